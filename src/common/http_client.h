/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 client (libcurl) for talking to the other daemons over unix
 * sockets and to DPS, IoT Hub and EST servers over HTTPS.
 *
 * libcurl is not linked: the first http_client_new() (or
 * http_client_global_init()) in a process loads it (common/dl_curl.h), so
 * the daemons that never make a request do not carry it.
 *
 * One blocking call per request. A struct http_client keeps one curl
 * handle, so that consecutive requests to the same server reuse the
 * connection (and TLS session). A client is used by one thread at a time;
 * use a client per thread.
 *
 * TLS: version 1.2 or later; the server's certificate chain and host name
 * are always verified, there is no way to turn either off. Trust comes from
 * ca_file and/or ca_dir when given (and then only from them), otherwise from
 * the system store. A client certificate is given either as PEM files or as
 * in-memory objects; the in-memory private key may be any EVP_PKEY usable
 * for signing in OpenSSL's default library context, including one held by
 * a provider (TPM, PKCS#11, or keyd) that never reveals the key.
 *
 * Redirects are not followed; every HTTP status is returned to the caller.
 * Debug logs name the method, the URL without its query, the status and the
 * time taken; never headers (Authorization) or bodies.
 */
#ifndef EDGEID_HTTP_CLIENT_H
#define EDGEID_HTTP_CLIENT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

#define HTTP_CLIENT_TIMEOUT_DEFAULT_MS 30000
#define HTTP_CLIENT_CONNECT_TIMEOUT_DEFAULT_MS 10000
/* Response body limit when the request sets none. */
#define HTTP_CLIENT_RESPONSE_MAX_DEFAULT BUF_MAX_DEFAULT
/* At most this many response header fields are kept; more is an error. */
#define HTTP_CLIENT_HEADERS_MAX 100
/* Retry-After values are clamped to this (one hour). */
#define HTTP_CLIENT_RETRY_AFTER_MAX_MS (3600 * 1000)

struct http_header {
	const char *name;
	const char *value;
};

struct http_client_request {
	const char *method; /* "GET" when NULL; any token ("POST", "PUT", "DELETE", ...) */
	const char *url;    /* http:// or https:// */
	/* Extra request headers. Names and values must not contain CR or LF.
	 * A Content-Type should accompany a body: none is added. */
	const struct http_header *headers;
	size_t n_headers;
	/* Sent as is when non-NULL (also for GET or DELETE). POST, PUT and
	 * PATCH without one send an empty body ("Content-Length: 0"). */
	const void *body;
	size_t body_len;

	unsigned timeout_ms;         /* whole request; 0 = HTTP_CLIENT_TIMEOUT_DEFAULT_MS */
	unsigned connect_timeout_ms; /* 0 = HTTP_CLIENT_CONNECT_TIMEOUT_DEFAULT_MS */
	size_t max_response_bytes;   /* body limit; 0 = HTTP_CLIENT_RESPONSE_MAX_DEFAULT */
	bool response_secret;        /* the body holds a secret: wipe it when freed */

	/* Connect to this unix socket instead of the URL's host; the URL then
	 * only names the request: "http://keyd.sock/keypair/1". */
	const char *unix_socket_path;

	/* Server verification: PEM bundle and/or hashed directory. */
	const char *ca_file;
	const char *ca_dir;

	/* Client certificate, as PEM files (the key unencrypted)... */
	const char *client_cert_file;
	const char *client_key_file;
	/* ...or in memory: borrowed, must outlive the call. client_chain holds
	 * intermediates to send after the certificate (may be NULL). */
	X509 *client_cert;
	STACK_OF(X509) * client_chain;
	EVP_PKEY *client_key;
};

struct http_client_response {
	long status;
	struct http_header *headers; /* owned; names and values trimmed */
	size_t n_headers;
	struct buf body; /* at most max_response_bytes; NUL-terminated */
	/* Retry-After in milliseconds, clamped to HTTP_CLIENT_RETRY_AFTER_MAX_MS;
	 * -1 when the response has none or it cannot be parsed. */
	int64_t retry_after_ms;
};

struct http_client;

/*
 * Load libcurl and run curl_global_init(), once per process (later calls
 * return the first outcome). http_client_new() does this too; a program
 * that starts threads calls this first, before them, and learns here
 * whether libcurl is usable.
 * Returns 0, or with the sentence in e:
 *   -ELIBACC  "libcurl.so.4 could not be loaded: <reason>"
 *   -EIO      "libcurl could not be initialised: <reason>"
 */
int http_client_global_init(struct err *e);

/* A client with its own connection cache. The first one in a process
 * loads libcurl (as http_client_global_init()); when that fails the client
 * is still made, and each http_client_perform() with it returns the
 * failure. NULL only on -ENOMEM (errno set). */
struct http_client *http_client_new(void);
/* Close the cached connections and free. Accepts NULL. */
void http_client_free(struct http_client *c);
DEFINE_CLEANUP_FUNC(struct http_client *, http_client_free)
#define _cleanup_http_client_ _cleanup_(http_client_freep)

/*
 * Send req and wait for the response. c may be NULL for a one-off request
 * on a fresh connection.
 *
 * Returns 0 when a response arrived, whatever its status; the caller owns
 * *ret_resp and frees it with http_client_response_free() (also safe, and
 * a no-op, after a failure: *ret_resp is always initialised).
 * Transport failures return a negative errno and one sentence in e:
 *   -ECONNREFUSED etc.  "connecting to https://host:443: connection refused"
 *                       (the socket path for unix sockets; errno from connect)
 *   -EHOSTUNREACH       "https://host/...: cannot resolve host name host"
 *   -ETIMEDOUT          "https://host/...: timed out after 5000 ms"
 *                       ("connecting to ...:" when no connection was made)
 *   -EKEYREJECTED       "https://host/...: server certificate verification
 *                       failed: <detail>" (chain or host name)
 *   -EPROTO             TLS handshake or protocol failure
 *   -E2BIG              "https://host/...: response larger than N bytes"
 *                       (or too many header fields)
 *   -EBADMSG            malformed or truncated response
 *   -ECONNRESET, -EPIPE "https://host/...: connection lost while sending the
 *                       request: broken pipe" (under TLS 1.3 this is also how
 *                       a server's refusal of the client certificate shows)
 *   -EINVAL             bad request: URL, header with CR/LF, unusable client
 *                       certificate or key, unreadable CA file
 *   -ELIBACC, -EIO      libcurl could not be loaded or initialised (the
 *                       sentences of http_client_global_init())
 *   -ENOMEM, -EIO       out of memory, other curl failures
 * URLs in messages lose their query, fragment and user information.
 * SIGPIPE raised by the transfer is blocked and discarded in the calling
 * thread; the process need not ignore it.
 */
int http_client_perform(struct http_client *c, const struct http_client_request *req,
			struct http_client_response *ret_resp, struct err *e);

/* The value of the first header named name (case-insensitive), or NULL.
 * Owned by resp. */
const char *http_client_response_header(const struct http_client_response *resp, const char *name);

/* Release the headers and body; resp is left empty. Accepts NULL and a
 * zeroed or already freed response. */
void http_client_response_free(struct http_client_response *resp);
static inline void http_client_response_freep(struct http_client_response *resp)
{
	http_client_response_free(resp);
}
#define _cleanup_http_client_response_ _cleanup_(http_client_response_freep)

/* Parse a Retry-After value, delta-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", also the RFC 850 and asctime forms),
 * relative to now. A date in the past gives 0; values are clamped to
 * HTTP_CLIENT_RETRY_AFTER_MAX_MS. Returns 0, or -EINVAL when unparseable.
 * An HTTP-date is read by libcurl, which is loaded for it if need be: then
 * also -ELIBACC or -EIO as http_client_global_init(). */
int http_client_parse_retry_after(const char *value, time_t now, int64_t *ret_ms);

/* Parse an HTTP-date (a Date or Retry-After value): the IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", or the RFC 850 or asctime forms.
 * Returns 0 and the time in *ret_time, -EINVAL when unparseable, or
 * -ELIBACC / -EIO when libcurl, which reads it, cannot be loaded (see
 * http_client_global_init()). */
int http_client_parse_date(const char *value, time_t *ret_time);

#endif
