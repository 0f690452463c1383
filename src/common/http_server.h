/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 server on a libevent loop.
 *
 * The daemons serve it on unix sockets, where the kernel tells who the
 * caller is (SO_PEERCRED); the cloud services serve it on TCP with TLS,
 * where a device may present a client certificate chain that the service
 * verifies itself (X.509 attestation), so the TLS layer accepts any chain
 * and hands it to the handler.
 *
 * The parser is our own, on bufferevents, so that every limit has an exact
 * status: request line too long 414, header section too large or too many
 * fields 431, body over the limit 413 (answered as soon as the length is
 * known, without reading the body), malformed request 400, request not
 * complete within request_timeout_ms 408. Each of these answers with
 * "Connection: close" and closes that connection only.
 *
 * One request per connection is handled at a time; pipelined requests wait
 * in the input buffer and are answered in order. A handler may answer at
 * once or later (http_request_defer), from any callback on the same loop.
 * Everything here runs on the loop's thread; nothing is thread-safe.
 *
 * http_server_new() sets SIGPIPE to SIG_IGN when it is at its default:
 * libevent and OpenSSL write with write(2), and a client that goes away
 * must not kill the daemon.
 *
 * Logging is at debug only, and never includes bodies, query strings or
 * header values.
 */
#ifndef EDGEID_HTTP_SERVER_H
#define EDGEID_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/macro.h"
#include "common/peercred.h"

struct event_base;
struct http_server;
struct http_request;

#define HTTP_SERVER_DEFAULT_MAX_REQUEST_LINE (8 * 1024)
#define HTTP_SERVER_DEFAULT_MAX_HEADER_BYTES (32 * 1024)
#define HTTP_SERVER_DEFAULT_MAX_HEADERS 100
#define HTTP_SERVER_DEFAULT_MAX_BODY (1024 * 1024)
#define HTTP_SERVER_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_SERVER_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define HTTP_SERVER_DEFAULT_WRITE_TIMEOUT_MS 30000
#define HTTP_SERVER_DEFAULT_MAX_CONNECTIONS 1024

/* Zero in any numeric field means its default. */
struct http_server_config {
	size_t max_request_line; /* bytes of the request line without CRLF */
	size_t max_header_bytes; /* bytes of the header section (and of chunked trailers) */
	size_t max_headers;      /* header fields in one request */
	size_t max_body;         /* decoded body bytes */
	/* A connection with no request in progress is closed silently after
	 * this long (also bounds the TLS handshake). */
	unsigned idle_timeout_ms;
	/* A request must be complete (line, headers, body) this long after its
	 * first byte arrived, or it is answered 408 and the connection closed. */
	unsigned request_timeout_ms;
	/* A client that stops reading its responses is dropped after this long. */
	unsigned write_timeout_ms;
	/* Connections open at once; more are accepted and closed at once. */
	unsigned max_connections;
	/* On unix sockets, connections open at once per peer uid (0: no limit);
	 * more are closed without a reply, as aziot's max_requests does. */
	unsigned max_connections_per_uid;
	bool reuseport;   /* SO_REUSEPORT on TCP listeners (one process per core) */
	bool json_errors; /* errors the server makes itself are {"message": "..."} */
};

/* Answers a request. Return 0 once it has answered (http_respond*) or
 * deferred (http_request_defer). A negative errno, or returning without
 * doing either, answers 500. The return value of a handler that deferred
 * is ignored. */
typedef int (*http_handler_fn)(struct http_request *req, void *userdata);

/* Called once when a deferred request can no longer be answered: its
 * client disconnected, or the server is being freed. req stays valid, and
 * must still be finished with one http_respond*() call (now or later),
 * which frees it and returns -ECONNRESET. */
typedef void (*http_abort_fn)(struct http_request *req, void *userdata);

/* --- server ------------------------------------------------------------ */

/* A server on base with the limits of cfg (NULL: all defaults); cfg is
 * copied. Returns NULL with errno ENOMEM. */
struct http_server *http_server_new(struct event_base *base, const struct http_server_config *cfg);

/* Close every listener (unlinking unix sockets this server created, when
 * the path is still ours) and every connection, aborting deferred
 * requests (see http_abort_fn). Not from inside a handler. Accepts NULL. */
void http_server_free(struct http_server *srv);
DEFINE_CLEANUP_FUNC(struct http_server *, http_server_free)
#define _cleanup_http_server_ _cleanup_(http_server_freep)

/* Route method + pattern to fn. method NULL matches any method; "HEAD" is
 * answered by the "GET" route when there is no HEAD route (without the
 * body). pattern starts with '/'; a segment "{name}" matches one non-empty
 * segment, available percent-decoded from http_request_path_param(req,
 * "name"); a final segment "*" matches the rest of the path (possibly
 * empty), available raw from http_request_path_param(req, "*"). Routes are
 * tried in the order they were added. A path that matches routes of other
 * methods only is answered 405 with Allow; no match at all is 404.
 * Returns 0, -EINVAL (bad pattern or method), -ENOMEM. */
int http_server_route(struct http_server *srv, const char *method, const char *pattern,
		      http_handler_fn fn, void *userdata);

/* Listen on a unix socket at path with file mode mode (exactly, whatever
 * the umask). A stale socket file (nobody accepting on it) is replaced; a
 * live one is -EADDRINUSE, and a file that is not a socket -EEXIST.
 * Returns 0, -ENAMETOOLONG, or the errno of socket/bind/listen/chmod. */
int http_server_listen_unix(struct http_server *srv, const char *path, mode_t mode);

/* Listen on TCP at the numeric address host ("127.0.0.1", "::1", "0.0.0.0")
 * and port (0: an ephemeral port, stored in *ret_port when non-NULL). With
 * tls_ctx (the server takes its own reference; NULL: plain HTTP), every
 * connection is TLS 1.2 or later with renegotiation disabled.
 * Returns 0, -EINVAL (host not numeric), or the errno of socket/bind/listen. */
int http_server_listen_tcp(struct http_server *srv, const char *host, uint16_t port,
			   SSL_CTX *tls_ctx, uint16_t *ret_port);

/* Serve on a listening socket received from systemd (socket activation)
 * or elsewhere. The server takes fd in every case (it is closed on
 * failure) and makes it non-blocking and close-on-exec.
 * Returns 0, -ENOTSOCK, -EINVAL (not a listening stream socket), -ENOMEM. */
int http_server_adopt_fd(struct http_server *srv, int fd, SSL_CTX *tls_ctx);

/* Serve one already connected stream socket (socketpair, inetd style).
 * Takes fd in every case. Returns 0, -EBUSY (a connection limit was
 * reached; fd was closed), -ENOTSOCK, -ENOMEM. */
int http_server_adopt_connection(struct http_server *srv, int fd, SSL_CTX *tls_ctx);

/* --- TLS --------------------------------------------------------------- */

enum http_tls_client_auth {
	HTTP_TLS_CLIENT_CERT_NONE,     /* no certificate request */
	HTTP_TLS_CLIENT_CERT_OPTIONAL, /* request one; connections without one work */
	HTTP_TLS_CLIENT_CERT_REQUIRED, /* handshake fails without one */
};

/* A TLS 1.2+ server context presenting cert (+ chain, may be NULL) with
 * key; the context takes its own references. See
 * http_server_tls_ctx_set_client_auth() for auth. The caller frees
 * *ret_ctx with SSL_CTX_free() (listeners hold their own reference).
 * Returns 0, -EINVAL (key does not match cert), -ENOMEM, -EIO. */
int http_server_tls_ctx_new(X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
			    enum http_tls_client_auth auth, SSL_CTX **ret_ctx);

/* Request client certificates on ctx. The TLS layer accepts any chain
 * (verification is the application's, on http_request_peer_chain()), and
 * session resumption is turned off so that every connection carries its
 * chain. Returns 0, -EIO. */
int http_server_tls_ctx_set_client_auth(SSL_CTX *ctx, enum http_tls_client_auth auth);

/* --- the request ------------------------------------------------------- */
/* Strings returned below are owned by req and valid until it is answered
 * (for a deferred request: until the http_respond*() call). */

const char *http_request_method(const struct http_request *req);
/* The request target as received, e.g. "/keys/a%20b?api-version=1". */
const char *http_request_target(const struct http_request *req);
/* The path part of the target, not decoded (absolute-form is reduced to it). */
const char *http_request_path(const struct http_request *req);
/* The query after '?', not decoded; NULL when the target has none. */
const char *http_request_query(const struct http_request *req);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
int http_request_version(const struct http_request *req);

/* Path parameter of the matched route ("{name}" segments decoded, "*" raw);
 * NULL when the route has none of that name. */
const char *http_request_path_param(const struct http_request *req, const char *name);

/* First query parameter called name (names and values percent-decoded,
 * '+' as space; "flag" without '=' has value ""); NULL when absent. */
const char *http_request_query_param(const struct http_request *req, const char *name);
size_t http_request_query_count(const struct http_request *req);
/* The i-th query parameter. Returns 0, -ENOENT past the end. */
int http_request_query_at(const struct http_request *req, size_t i, const char **ret_name,
			  const char **ret_value);

/* First header field called name (case-insensitive), its value trimmed;
 * NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);
size_t http_request_header_count(const struct http_request *req);
/* The i-th header field in the order received. Returns 0, -ENOENT. */
int http_request_header_at(const struct http_request *req, size_t i, const char **ret_name,
			   const char **ret_value);

/* The decoded body (Content-Length or chunked); an empty body is "" with
 * length 0. Always followed by a NUL byte that is not counted. */
const void *http_request_body(const struct http_request *req, size_t *ret_len);

/* Credentials of the peer process on a unix socket; NULL on other sockets. */
const struct peercred *http_request_peercred(const struct http_request *req);

/* The client certificate chain of a TLS connection, leaf first, then the
 * certificates the client sent with it, in its order; NULL without TLS or
 * when the client sent none. Not verified. Borrowed: owned by req. */
STACK_OF(X509) * http_request_peer_chain(const struct http_request *req);

bool http_request_is_tls(const struct http_request *req);
/* "127.0.0.1:40312", "[::1]:40312", or "unix". */
const char *http_request_remote_addr(const struct http_request *req);

/* --- answering --------------------------------------------------------- */

/* Add a response header (sent with the response). The server writes Date,
 * Content-Length and Connection itself; those and Transfer-Encoding are
 * refused. Returns 0, -EINVAL (not a token name, CR/LF/NUL in the value,
 * or a refused name), -E2BIG (more than 16 KiB of headers), -EALREADY
 * (already answered), -ENOMEM. */
int http_response_add_header(struct http_request *req, const char *name, const char *value);

/* Answer req with status, Content-Type content_type (NULL: none) and len
 * bytes of body (copied). The response always carries Date and
 * Content-Length (except 1xx, 204 and 304, which carry no body). After
 * this call req is finished: do not use it again (inside its handler it
 * stays readable until the handler returns).
 * Returns 0; -EINVAL (status outside 200..599, or CR/LF in content_type;
 * 500 was sent instead);
 * -ECONNRESET (the client is gone; req was freed); -ENOMEM (the
 * connection was closed); -EALREADY (req was already answered; nothing
 * happened). */
int http_respond(struct http_request *req, int status, const char *content_type, const void *body,
		 size_t len);

/* Answer with body serialised compactly as "application/json;
 * charset=utf-8" (the Azure SDKs parse a body as JSON only when the type
 * says so). body is borrowed (not decref'd); NULL answers 500. Returns as
 * http_respond. */
int http_respond_json(struct http_request *req, int status, const json_t *body);

/* Answer with {"message": message} as JSON (the error shape
 * of the aziot APIs). Returns as http_respond. */
int http_respond_message(struct http_request *req, int status, const char *message);

/* From inside its handler: req will be answered later, from another
 * callback on the same event loop, by one http_respond*() call. on_abort
 * (may be NULL) is called if the client disconnects or the server is freed
 * first. Returns 0, -EINVAL (not inside the handler, or already answered). */
int http_request_defer(struct http_request *req, http_abort_fn on_abort, void *userdata);

/* The RFC 9110 reason phrase of status ("Not Found"); "" when unknown. */
const char *http_status_text(int status);

#endif
