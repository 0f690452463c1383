/* SPDX-License-Identifier: MIT */
/*
 * certd: aziot's Certificates Service API (specs/aziot-compat.md §2.2) on
 * the daemon runtime. This file holds the routes and handlers: they parse
 * the caller's JSON, check who may write which certificate id, and use the
 * store (certd_store.c), the CSR and PEM parsers and the issuer
 * (certd_issue.c). Private keys stay in keyd: a certificate is signed
 * through keyd's API with a key handle (keyd_pkey_new(), an EVP_PKEY whose
 * private operations are keyd calls).
 *
 * Authorization (aziot's rule): creating, importing and deleting need the
 * caller's uid to be granted the certificate id by a [[principal]] certs
 * pattern (uid 0 always is); otherwise 403 "user <uid> is not authorized
 * to modify the cert <id>" (aziot answers 401; 403 as keyd does in this
 * tree), decided before anything else is looked at. Reading is open to
 * every caller that can connect: certificates are public.
 *
 * The calls to keyd are synchronous: the event loop waits for keyd (on its
 * local socket, at most 30 s) while a certificate is signed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/json.h"
#include "common/log.h"
#include "device/certd/certd.h"
#include "device/client/client.h"

struct certd {
	struct daemon *d;
	struct certd_settings s;
};

DEFINE_CLEANUP_FUNC(X509 *, X509_free)
DEFINE_CLEANUP_FUNC(X509_REQ *, X509_REQ_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

static void x509_stack_free(STACK_OF(X509) * *p)
{
	sk_X509_pop_free(*p, X509_free);
}

/* --- the daemon's life ------------------------------------------------------------- */

static int certd_check(struct daemon *d, struct err *e)
{
	struct certd_settings s;
	int r = certd_settings_parse(daemon_get_config(d), daemon_root(d), &s, e);

	if (r >= 0)
		certd_settings_clear(&s);
	return r;
}

static void certd_fini(void *state)
{
	struct certd *c = state;

	if (!c)
		return;
	certd_settings_clear(&c->s);
	free(c);
}

static int certd_init(struct daemon *d, void **ret_state, struct err *e)
{
	struct certd *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->d = d;
	r = certd_settings_parse(daemon_get_config(d), daemon_root(d), &c->s, e);
	if (r >= 0)
		r = certd_store_setup(&c->s, e);
	if (r < 0) {
		certd_fini(c);
		return r;
	}
	log_info("%s; %zu issuance entries, %zu preloaded certificates%s",
		 c->s.homedir ? c->s.homedir : "no homedir_path", c->s.n_issuance, c->s.n_preloaded,
		 c->s.local_ca_cert ? ", a local CA" : "");
	*ret_state = c;
	return 0;
}

/* SIGHUP: cert_issuance, preloaded_certs and [[principal]] change (the
 * runtime reloads the principals); homedir_path and the keyd endpoint
 * stay as they were until a restart, as in aziot. */
static int certd_reload(struct daemon *d, void *state, const struct daemon_config *next,
			struct err *e)
{
	struct certd *c = state;
	struct certd_settings s;
	int r;

	r = certd_settings_parse(next, daemon_root(d), &s, e);
	if (r < 0)
		return r;
	if ((s.homedir == NULL) != (c->s.homedir == NULL) ||
	    (s.homedir && !streq(s.homedir, c->s.homedir)))
		log_warn("homedir_path changed; the new one is used after a restart");
	free(s.homedir);
	free(s.certs_dir);
	free(s.keyd_socket);
	s.homedir = TAKE_PTR(c->s.homedir);
	s.certs_dir = TAKE_PTR(c->s.certs_dir);
	s.keyd_socket = TAKE_PTR(c->s.keyd_socket);
	certd_settings_clear(&c->s);
	c->s = s;
	return 0;
}

/* --- request helpers ------------------------------------------------------------------- */

static int invalid_parameter(struct daemon_request *req, const char *name, const char *cause)
{
	return daemon_respond_error(
	    req, 400, "parameter \"%s\" has an invalid value\ncaused by: %s", name, cause);
}

/* May the caller write id? Answers 403 when not. */
static bool allowed(struct certd *c, struct daemon_request *req, const char *id)
{
	uid_t uid = daemon_request_cred(req)->uid;

	if (daemon_authorize(c->d, uid, id))
		return true;
	daemon_respond_error(req, 403, "user %u is not authorized to modify the cert %s",
			     (unsigned)uid, id);
	return false;
}

/* Certificate ids are names: empty ones, and ones with control
 * characters (which would also forge lines in the log), are refused.
 * Answers 400 and returns true for such an id. */
static bool bad_id(struct daemon_request *req, const char *param, const char *id)
{
	if (*id == '\0') {
		invalid_parameter(req, param, "a certificate id cannot be empty");
		return true;
	}
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			invalid_parameter(req, param,
					  "a certificate id cannot contain control characters");
			return true;
		}
	return false;
}

/* A certificate id that cannot be written: a bundle of other ids. Answers
 * 400 and returns true. */
static bool is_bundle(struct certd *c, struct daemon_request *req, const char *param,
		      const char *id)
{
	const struct certd_preloaded *pc = certd_settings_preloaded(&c->s, id);
	char cause[512];

	if (!pc || pc->path)
		return false;
	snprintf(cause, sizeof(cause),
		 "\"%s\" is a preloaded list of other certificates; it cannot be written or "
		 "deleted",
		 id);
	invalid_parameter(req, param, cause);
	return true;
}

/* A failed store write or delete. */
static int store_failed(struct daemon_request *req, int r, const struct err *e)
{
	log_err("%s", err_msg(e, r));
	if (r == -ENOENT) /* no homedir_path: the configuration's, said as it is */
		return daemon_respond_error(req, 500, "%s", err_msg(e, r));
	return daemon_respond_error(req, 500, "internal error");
}

static int respond_pem(struct daemon_request *req, int status, const char *pem, size_t len)
{
	_cleanup_json_ json_t *s = json_stringn(pem, len), *o = NULL;

	if (!s) {
		log_err("a certificate's PEM text is not UTF-8 text");
		return daemon_respond_error(req, 500, "internal error");
	}
	o = json_pack("{s:O}", "pem", s);
	return o ? daemon_respond_json(req, status, o) : -ENOMEM;
}

/* --- GET, PUT, DELETE /certificates/{certId} -------------------------------------------- */

static int get_cert(struct daemon_request *req, void *state)
{
	struct certd *c = state;
	const char *id = daemon_request_param(req, "certId");
	_cleanup_buf_ struct buf pem = {0};
	struct err e = {0};
	int r;

	if (bad_id(req, "id", id))
		return 0;
	buf_init(&pem, CERTD_PEM_MAX);
	r = certd_store_read(&c->s, id, &pem, &e);
	if (r == -ENOENT)
		return invalid_parameter(req, "id", "not found");
	if (r < 0) {
		log_err("reading certificate \"%s\": %s", id, err_msg(&e, r));
		return daemon_respond_error(req, 500, "internal error");
	}
	return respond_pem(req, 200, buf_str(&pem), pem.len);
}

static int put_cert(struct daemon_request *req, void *state)
{
	struct certd *c = state;
	const char *id = daemon_request_param(req, "certId"), *pem;
	_cleanup_(x509_stack_free) STACK_OF(X509) *chain = NULL;
	json_t *body;
	struct err e = {0};
	int r;

	if (!allowed(c, req, id))
		return 0;
	body = daemon_request_object(req);
	if (!body || daemon_request_string(req, body, "pem", true, &pem))
		return 0;
	if (bad_id(req, "id", id) || is_bundle(c, req, "id", id))
		return 0;
	r = certd_pem_chain_parse(pem, strlen(pem), &chain, &e);
	if (r == -EINVAL)
		return invalid_parameter(req, "pem", err_msg(&e, r));
	if (r < 0)
		return r;
	r = certd_store_write(&c->s, id, pem, strlen(pem), &e);
	if (r < 0)
		return store_failed(req, r, &e);
	log_info("imported certificate \"%s\" (%d in the chain)", id, sk_X509_num(chain));
	return respond_pem(req, 201, pem, strlen(pem));
}

static int delete_cert(struct daemon_request *req, void *state)
{
	struct certd *c = state;
	const char *id = daemon_request_param(req, "certId");
	struct err e = {0};
	int r;

	if (!allowed(c, req, id) || bad_id(req, "id", id) || is_bundle(c, req, "id", id))
		return 0;
	r = certd_store_delete(&c->s, id, &e);
	if (r < 0)
		return store_failed(req, r, &e);
	log_info("deleted certificate \"%s\"", id);
	return daemon_respond_no_content(req);
}

/* --- POST /certificates -------------------------------------------------------------------- */

static struct local_client *keyd_client(struct certd *c)
{
	return local_client_new("keyd", c->s.keyd_socket, CERTD_KEYD_API_VERSION);
}

/* The algorithm of the key pair behind handle, as keyd names it ("ECDSA",
 * "RSA"), into alg. 0; -EINVAL when keyd refuses the handle (its reason in
 * e); another errno when keyd cannot be asked. */
static int keyd_key_algorithm(struct certd *c, const char *handle, char alg[16], struct err *e)
{
	_cleanup_local_client_ struct local_client *lc = keyd_client(c);
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	const char *value = NULL;
	long status = 0;
	int r;

	body = json_pack("{s:s}", "keyHandle", handle);
	if (!lc || !body)
		return err_set(e, -ENOMEM, "out of memory");
	r = local_client_call(lc, "POST", "/parameters/algorithm", body, &answer, &status, e);
	if (r == -EPROTO && status >= 400 && status < 500)
		return -EINVAL;
	if (r < 0)
		return r;
	if (json_get_string(answer, "value", &value, NULL) < 0)
		return err_set(e, -EBADMSG, "keyd: POST /parameters/algorithm: no \"value\"");
	snprintf(alg, 16, "%s", value);
	return 0;
}

/* Is pub a key of the algorithm keyd names alg? */
static bool algorithm_matches(EVP_PKEY *pub, const char *alg)
{
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		return streq(alg, "ECDSA");
	case EVP_PKEY_RSA:
		return streq(alg, "RSA");
	default:
		return false;
	}
}

/* A signing key for the public key pub whose private half keyd holds
 * under handle. */
static int keyd_signer(struct certd *c, const char *handle, EVP_PKEY *pub, EVP_PKEY **ret,
		       struct err *e)
{
	return keyd_pkey_new(c->s.keyd_socket, handle, pub, ret, e);
}

/* What signs a new certificate: the issuer's chain (leaf first; none for
 * self-signed) and keyd's handle of the signing key. */
struct signer {
	STACK_OF(X509) * chain;
	char *handle;
	char alg[16];        /* the key's algorithm, as keyd names it */
	const char *cert_id; /* the issuer's certificate id (for messages) */
	const char *key_id;  /* the key's id in keyd, or NULL for a caller's handle */
};

static void signer_clear(struct signer *s)
{
	sk_X509_pop_free(s->chain, X509_free);
	if (s->handle) {
		explicit_bzero(s->handle, strlen(s->handle));
		free(s->handle);
	}
}

/* The chain of certificate id from the store. -ENOENT: none; -EINVAL: not
 * a PEM chain (reason in e). */
static int read_chain(struct certd *c, const char *id, STACK_OF(X509) * *ret, struct err *e)
{
	_cleanup_buf_ struct buf pem = {0};
	int r;

	buf_init(&pem, CERTD_PEM_MAX);
	r = certd_store_read(&c->s, id, &pem, e);
	if (r < 0)
		return r;
	return certd_pem_chain_parse(buf_str(&pem), pem.len, ret, e);
}

/* issuer {certId, privateKeyHandle} from the body. Returns 0, 1 after
 * answering, or a negative errno. */
static int explicit_signer(struct certd *c, struct daemon_request *req, const json_t *issuer,
			   struct signer *ret)
{
	const char *cert_id, *handle;
	struct err e = {0};
	int r;

	if (daemon_request_string(req, issuer, "certId", true, &cert_id) ||
	    daemon_request_string(req, issuer, "privateKeyHandle", true, &handle))
		return 1;
	r = read_chain(c, cert_id, &ret->chain, &e);
	if (r == -ENOENT || r == -EINVAL) {
		invalid_parameter(req, "issuer.certId",
				  r == -ENOENT ? "not found" : err_msg(&e, r));
		return 1;
	}
	if (r < 0) {
		log_err("reading the issuer certificate \"%s\": %s", cert_id, err_msg(&e, r));
		daemon_respond_error(req, 500, "internal error");
		return 1;
	}
	r = keyd_key_algorithm(c, handle, ret->alg, &e);
	if (r == -EINVAL) {
		invalid_parameter(req, "issuer.privateKeyHandle", err_msg(&e, r));
		return 1;
	}
	if (r < 0) {
		/* keyd cannot be reached: the sentence says where it was looked for. */
		log_err("%s", err_msg(&e, r));
		daemon_respond_error(req, 500, "%s", err_msg(&e, r));
		return 1;
	}
	ret->handle = strdup(handle);
	ret->cert_id = cert_id;
	return ret->handle ? 0 : -ENOMEM;
}

/* A configuration problem that keeps certd from issuing id: 500 with the
 * sentence (it names no secret, and the operator needs it). Returns 1. */
static int cannot_issue(struct daemon_request *req, const char *id, const char *why)
{
	log_err("cannot issue certificate \"%s\": %s", id, why);
	daemon_respond_error(req, 500, "cannot issue certificate \"%s\": %s", id, why);
	return 1;
}

/* The signer [cert_issuance.<id>] names. Returns 0, 1 after answering, or
 * a negative errno. */
static int configured_signer(struct certd *c, struct daemon_request *req, const char *id,
			     const struct certd_issuance *iss, struct signer *ret)
{
	_cleanup_local_client_ struct local_client *lc = NULL;
	char why[ERR_MSG_MAX + 128];
	struct err e = {0};
	int r;

	if (!iss) {
		invalid_parameter(req, "issuer", "issuer is required for locally-issued certs");
		return 1;
	}
	switch (iss->method) {
	case CERTD_METHOD_EST:
		return cannot_issue(req, id,
				    "it is configured to be issued by EST, and EST issuance is not "
				    "supported yet");
	case CERTD_METHOD_SELF_SIGNED:
		/* Signed by the key pair of the same id, which the caller
		 * made in keyd (and whose public key is the CSR's). */
		ret->key_id = id;
		break;
	case CERTD_METHOD_LOCAL_CA:
		if (!c->s.local_ca_cert)
			return cannot_issue(req, id,
					    "it is configured to be issued by the local CA, and "
					    "[cert_issuance.local_ca] is not configured");
		ret->cert_id = c->s.local_ca_cert;
		ret->key_id = c->s.local_ca_pk;
		r = read_chain(c, ret->cert_id, &ret->chain, &e);
		if (r < 0) {
			snprintf(why, sizeof(why), "the local CA certificate \"%s\": %s",
				 ret->cert_id, r == -ENOENT ? "not found" : err_msg(&e, r));
			return cannot_issue(req, id, why);
		}
		break;
	}
	lc = keyd_client(c);
	if (!lc)
		return -ENOMEM;
	r = keyd_client_key_pair_handle(lc, ret->key_id, &ret->handle, &e);
	if (r >= 0)
		r = keyd_key_algorithm(c, ret->handle, ret->alg, &e);
	if (r < 0) {
		snprintf(why, sizeof(why), "its signing key \"%s\": %s", ret->key_id,
			 err_msg(&e, r));
		return cannot_issue(req, id, why);
	}
	return 0;
}

/* Sign csr for id with s and answer. */
static int issue(struct certd *c, struct daemon_request *req, const char *id, X509_REQ *csr,
		 const struct certd_issuance *iss, struct signer *s)
{
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_buf_ struct buf pem = {0};
	X509 *issuer = s->chain ? sk_X509_value(s->chain, 0) : NULL;
	struct certd_issue_params p = {
	    .csr = csr,
	    .issuer = issuer,
	    .subject = iss ? iss->subject : NULL,
	    .n_subject = iss ? iss->n_subject : 0,
	    .expiry_days = iss ? iss->expiry_days : CERTD_EXPIRY_DAYS_DEFAULT,
	};
	char why[ERR_MSG_MAX + 128];
	EVP_PKEY *pub = issuer ? X509_get0_pubkey(issuer) : X509_REQ_get0_pubkey(csr);
	struct err e = {0};
	int r;

	if (!pub) {
		ERR_clear_error();
		return invalid_parameter(req, issuer ? "issuer.certId" : "csr",
					 "its public key is not one OpenSSL can use");
	}
	/* keyd would refuse to sign with a key of the other kind; say what
	 * is wrong instead. */
	if (!algorithm_matches(pub, s->alg)) {
		r = err_set(&e, -EKEYREJECTED,
			    issuer ? "the signing key is not the issuer certificate's key"
				   : "the signing key is not the CSR's key");
	} else {
		r = keyd_signer(c, s->handle, pub, &key, &e);
		if (r == -ENOTSUP && !s->key_id)
			return invalid_parameter(req, "issuer.certId", err_msg(&e, r));
		if (r < 0) {
			log_err("certificate \"%s\": %s", id, err_msg(&e, r));
			return daemon_respond_error(req, 500, "internal error");
		}
		p.key = key;
		r = certd_issue_cert(&p, &cert, &e);
	}
	if (r == -EKEYEXPIRED || r == -EKEYREJECTED) {
		if (!s->key_id) /* the caller's issuer and handle */
			return invalid_parameter(
			    req, r == -EKEYEXPIRED ? "issuer.certId" : "issuer.privateKeyHandle",
			    err_msg(&e, r));
		if (!issuer) /* self-signed: the CSR was made with another key */
			return invalid_parameter(
			    req, "csr",
			    "its public key is not that of the key pair in keyd that signs this "
			    "self-signed certificate");
		snprintf(why, sizeof(why), "the local CA (certificate \"%s\", key \"%s\"): %s",
			 s->cert_id, s->key_id, err_msg(&e, r));
		return cannot_issue(req, id, why);
	}
	if (r < 0) {
		log_err("certificate \"%s\": %s", id, err_msg(&e, r));
		return daemon_respond_error(req, 500, "internal error");
	}

	buf_init(&pem, CERTD_PEM_MAX);
	r = certd_pem_encode(cert, s->chain, &pem);
	if (r < 0)
		return r;
	r = certd_store_write(&c->s, id, pem.data, pem.len, &e);
	if (r < 0)
		return store_failed(req, r, &e);
	{
		char serial[80] = "?";
		char *hex = NULL;
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);

		if (bn && (hex = BN_bn2hex(bn)))
			snprintf(serial, sizeof(serial), "%s", hex);
		OPENSSL_free(hex);
		BN_free(bn);
		log_info("issued certificate \"%s\" (serial %s), %s", id, serial,
			 !issuer     ? "self-signed"
			 : s->key_id ? "by the local CA"
				     : "by the caller's issuer");
	}
	return respond_pem(req, 201, buf_str(&pem), pem.len);
}

static int post_certs(struct daemon_request *req, void *state)
{
	struct certd *c = state;
	_cleanup_(X509_REQ_freep) X509_REQ *csr = NULL;
	const char *id, *csr_pem;
	json_t *body = daemon_request_object(req), *issuer = NULL;
	struct signer s = {0};
	struct err e = {0};
	int r;

	if (!body || daemon_request_string(req, body, "certId", true, &id) ||
	    daemon_request_string(req, body, "csr", true, &csr_pem))
		return 0;
	r = json_get_object_opt(body, "issuer", &issuer, &e);
	if (r < 0)
		return daemon_respond_error(req, 422, "%s", err_msg(&e, r));
	if (!allowed(c, req, id))
		return 0;
	if (bad_id(req, "certId", id) || is_bundle(c, req, "certId", id))
		return 0;
	r = certd_csr_parse(csr_pem, strlen(csr_pem), &csr, &e);
	if (r == -EINVAL)
		return invalid_parameter(req, "csr", err_msg(&e, r));
	if (r < 0)
		return r;

	r = issuer ? explicit_signer(c, req, issuer, &s)
		   : configured_signer(c, req, id, certd_settings_issuance(&c->s, id), &s);
	if (r == 0)
		r = issue(c, req, id, csr, certd_settings_issuance(&c->s, id), &s);
	else if (r > 0)
		r = 0; /* answered */
	signer_clear(&s);
	return r;
}

/* --- the daemon ---------------------------------------------------------------------------- */

static const char *const certd_api_versions[] = {CERTD_API_VERSION, NULL};

static const struct daemon_route certd_routes[] = {
    {.pattern = "/certificates", .post = post_certs},
    {.pattern = "/certificates/{certId}", .get = get_cert, .put = put_cert, .del = delete_cert},
};

const struct daemon_spec certd_spec = {
    .name = "certd",
    .summary = "the certificates service: store, local CA, self-signed certificates",
    .api_versions = certd_api_versions,
    .routes = certd_routes,
    .n_routes = ARRAY_SIZE(certd_routes),
    .principal_grants = "certs",
    .init = certd_init,
    .check = certd_check,
    .reload = certd_reload,
    .fini = certd_fini,
};
