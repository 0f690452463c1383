/* SPDX-License-Identifier: MIT */
/*
 * http_client against real servers on loopback that this test runs itself:
 * libevent's evhttp on 127.0.0.1 and on a unix socket, the same over TLS
 * (bufferevent_openssl) with certificates from a CA made here, plus bare
 * sockets that refuse connections or never answer. The servers run in one
 * thread on one event base; everything they observe (method, path, body,
 * client certificate, which connection) comes back in the response, so the
 * test threads share no memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/http_client.h"
#include "common/log.h"
#include "edgeid-version.h"

#define BIG_BODY 100000
#define PATH_LEN 256

/* cmocka's assertions jump back to the test; the server thread aborts. */
#define SERVER_CHECK(x)                                                                            \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

struct ext {
	int nid;
	const char *value;
};

struct conn_slot {
	struct evhttp_connection *evcon;
	uint16_t port;
	int requests;
};

static struct {
	char dir[64];
	char ca_file[PATH_LEN], ca_dir[PATH_LEN], other_ca_file[PATH_LEN];
	char client_cert_file[PATH_LEN], client_key_file[PATH_LEN], sock_path[PATH_LEN];
	char nosock_path[PATH_LEN], ca_link[PATH_LEN + 32];

	EVP_PKEY *ca_key, *other_ca_key, *server_key, *client_key, *inter_key, *chained_key;
	X509 *ca, *other_ca, *server, *client, *inter, *chained;

	struct event_base *base;
	struct evhttp *plain, *tls, *tls_req;
	SSL_CTX *tls_ctx, *tls_req_ctx;
	int plain_port, tls_port, tls_req_port;
	int silent_fd, silent_port;   /* listens, never accepts */
	int refused_fd, refused_port; /* bound, not listening */
	int wake[2];
	struct event *wake_ev;
	pthread_t thread;

	/* Server thread only. */
	struct conn_slot conns[128];
} fx;

/* ---- the throwaway PKI ---- */

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
		       const struct ext *exts, size_t n_exts)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	for (size_t i = 0; i < n_exts; i++) {
		X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);

		assert_non_null(ex);
		assert_int_equal(X509_add_ext(x, ex, -1), 1);
		X509_EXTENSION_free(ex);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static X509 *make_ca(const char *cn, EVP_PKEY *key)
{
	static const struct ext exts[] = {
	    {NID_basic_constraints, "critical,CA:TRUE"},
	    {NID_key_usage, "critical,keyCertSign,cRLSign"},
	    {NID_subject_key_identifier, "hash"},
	};

	return make_cert(cn, key, NULL, NULL, exts, 3);
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	if (cert)
		assert_int_equal(PEM_write_X509(f, cert), 1);
	if (key)
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void make_pki(void)
{
	static const struct ext server_exts[] = {
	    {NID_basic_constraints, "critical,CA:FALSE"},
	    {NID_key_usage, "critical,digitalSignature"},
	    {NID_ext_key_usage, "serverAuth"},
	    {NID_subject_alt_name, "IP:127.0.0.1"},
	    {NID_authority_key_identifier, "keyid:always"},
	};
	static const struct ext client_exts[] = {
	    {NID_basic_constraints, "critical,CA:FALSE"},
	    {NID_key_usage, "critical,digitalSignature"},
	    {NID_ext_key_usage, "clientAuth"},
	    {NID_authority_key_identifier, "keyid:always"},
	};
	static const struct ext inter_exts[] = {
	    {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
	    {NID_key_usage, "critical,keyCertSign,cRLSign"},
	    {NID_subject_key_identifier, "hash"},
	    {NID_authority_key_identifier, "keyid:always"},
	};
	char hashed[16];

	fx.ca_key = make_key();
	fx.ca = make_ca("edgeid test CA", fx.ca_key);
	fx.other_ca_key = make_key();
	fx.other_ca = make_ca("edgeid unrelated CA", fx.other_ca_key);
	fx.server_key = make_key();
	fx.server =
	    make_cert("edgeid test server", fx.server_key, fx.ca, fx.ca_key, server_exts, 5);
	fx.client_key = make_key();
	fx.client =
	    make_cert("edgeid test client", fx.client_key, fx.ca, fx.ca_key, client_exts, 4);

	/* A client certificate under an intermediate CA the server does not
	 * know: the client has to send the intermediate. */
	fx.inter_key = make_key();
	fx.inter =
	    make_cert("edgeid test intermediate CA", fx.inter_key, fx.ca, fx.ca_key, inter_exts, 4);
	fx.chained_key = make_key();
	fx.chained = make_cert("edgeid chained client", fx.chained_key, fx.inter, fx.inter_key,
			       client_exts, 4);

	write_pem(fx.ca_file, fx.ca, NULL);
	write_pem(fx.other_ca_file, fx.other_ca, NULL);
	write_pem(fx.client_cert_file, fx.client, NULL);
	write_pem(fx.client_key_file, NULL, fx.client_key);

	/* A CA directory as OpenSSL looks it up: <subject hash>.0 */
	assert_int_equal(mkdir(fx.ca_dir, 0700), 0);
	snprintf(hashed, sizeof(hashed), "%08lx.0", X509_subject_name_hash(fx.ca));
	snprintf(fx.ca_link, sizeof(fx.ca_link), "%s/%s", fx.ca_dir, hashed);
	assert_int_equal(symlink(fx.ca_file, fx.ca_link), 0);
}

/* ---- the servers ---- */

static int count_request(struct evhttp_connection *evcon, uint16_t port)
{
	struct conn_slot *free_slot = NULL;

	for (size_t i = 0; i < sizeof(fx.conns) / sizeof(fx.conns[0]); i++) {
		struct conn_slot *s = &fx.conns[i];

		if (s->evcon == evcon && s->port == port)
			return ++s->requests;
		if (!s->evcon && !free_slot)
			free_slot = s;
	}
	if (!free_slot)
		return -1;
	free_slot->evcon = evcon;
	free_slot->port = port;
	free_slot->requests = 1;
	return 1;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	default:
		return "OTHER";
	}
}

static void add_header(struct evhttp_request *req, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), name, value ? value : "(none)");
}

/* Tell the client what the server saw of it. */
static void describe_peer(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	SSL *ssl = bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon));
	char *address = NULL;
	uint16_t port = 0;
	char text[64];

	evhttp_connection_get_peer(evcon, &address, &port);
	if (port != 0) {
		snprintf(text, sizeof(text), "%u", port);
		add_header(req, "X-Peer-Port", text);
		snprintf(text, sizeof(text), "%d", count_request(evcon, port));
		add_header(req, "X-Conn-Requests", text);
	}
	if (ssl) {
		X509 *peer = SSL_get0_peer_certificate(ssl);

		if (peer && X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
						      text, sizeof(text)) > 0)
			add_header(req, "X-Client-Cert", text);
		else
			add_header(req, "X-Client-Cert", "none");
	}
}

static void handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evbuffer_new();
	char text[128];

	SERVER_CHECK(body);
	describe_peer(req);
	if (strcmp(path, "/echo") == 0) {
		add_header(req, "X-Method", method_name(evhttp_request_get_command(req)));
		add_header(req, "X-Path", path);
		add_header(req, "X-Query", evhttp_uri_get_query(uri));
		add_header(req, "X-Test", evhttp_find_header(in, "X-Test"));
		add_header(req, "X-Authorization", evhttp_find_header(in, "Authorization"));
		add_header(req, "X-Content-Type", evhttp_find_header(in, "Content-Type"));
		add_header(req, "X-Content-Length", evhttp_find_header(in, "Content-Length"));
		add_header(req, "X-Expect", evhttp_find_header(in, "Expect"));
		add_header(req, "X-User-Agent", evhttp_find_header(in, "User-Agent"));
		evbuffer_add_buffer(body, evhttp_request_get_input_buffer(req));
		evhttp_send_reply(req, 200, "OK", body);
	} else if (strcmp(path, "/retry3") == 0) {
		add_header(req, "Retry-After", "3");
		evhttp_send_reply(req, 503, "Service Unavailable", body);
	} else if (strcmp(path, "/retrydate") == 0) {
		time_t when = time(NULL) + 120;
		struct tm tm;

		SERVER_CHECK(gmtime_r(&when, &tm));
		SERVER_CHECK(strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0);
		add_header(req, "Retry-After", text);
		evhttp_send_reply(req, 429, "Too Many Requests", body);
	} else if (strcmp(path, "/big") == 0) {
		char *big = malloc(BIG_BODY);

		SERVER_CHECK(big);
		memset(big, 'x', BIG_BODY);
		evbuffer_add(body, big, BIG_BODY);
		free(big);
		evhttp_send_reply(req, 200, "OK", body);
	} else if (strcmp(path, "/bigchunked") == 0) {
		char chunk[BIG_BODY / 10];

		memset(chunk, 'y', sizeof(chunk));
		evhttp_send_reply_start(req, 200, "OK");
		for (int i = 0; i < 10; i++) {
			evbuffer_add(body, chunk, sizeof(chunk));
			evhttp_send_reply_chunk(req, body);
		}
		evhttp_send_reply_end(req);
	} else {
		evbuffer_add_printf(body, "not here");
		evhttp_send_reply(req, 404, "Not Found", body);
	}
	evbuffer_free(body);
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	SERVER_CHECK(ssl);
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	SERVER_CHECK(bev);
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static SSL_CTX *server_ssl_ctx(bool require_client_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, fx.server), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, fx.server_key), 1);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), fx.ca), 1);
	assert_int_equal(SSL_CTX_add_client_CA(ctx, fx.ca), 1);
	/* Send the leaf only, as servers whose root the client must hold do. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | (require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
	    NULL);
	return ctx;
}

static int bound_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	return ntohs(sa.sin_port);
}

static struct evhttp *new_server(SSL_CTX *ctx, int *ret_port)
{
	struct evhttp *http = evhttp_new(fx.base);
	struct evhttp_bound_socket *bound;

	assert_non_null(http);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					     EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
					     EVHTTP_REQ_HEAD);
	evhttp_set_gencb(http, handle, NULL);
	if (ctx)
		evhttp_set_bevcb(http, tls_bev, ctx);
	bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	assert_non_null(bound);
	*ret_port = bound_port(evhttp_bound_socket_get_fd(bound));
	return http;
}

static int loopback_socket(bool do_listen, int *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 8), 0);
	*ret_port = bound_port(fd);
	return fd;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(fx.base);
}

static void *server_thread(void *arg)
{
	sigset_t set;

	/* libevent writes with writev(): a client that hung up must not end
	 * the test. (The client side is protected by http_client itself.) */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	event_base_dispatch(fx.base);
	return NULL;
}

static int setup(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(fx.dir, sizeof(fx.dir), "%s/edgeid-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx.dir));
	snprintf(fx.ca_file, PATH_LEN, "%s/ca.pem", fx.dir);
	snprintf(fx.ca_dir, PATH_LEN, "%s/ca.d", fx.dir);
	snprintf(fx.other_ca_file, PATH_LEN, "%s/other-ca.pem", fx.dir);
	snprintf(fx.client_cert_file, PATH_LEN, "%s/client.pem", fx.dir);
	snprintf(fx.client_key_file, PATH_LEN, "%s/client.key", fx.dir);
	snprintf(fx.sock_path, PATH_LEN, "%s/test.sock", fx.dir);
	snprintf(fx.nosock_path, PATH_LEN, "%s/nobody.sock", fx.dir);
	make_pki();

	fx.base = event_base_new();
	assert_non_null(fx.base);
	fx.plain = new_server(NULL, &fx.plain_port);
	fx.tls_ctx = server_ssl_ctx(false);
	fx.tls = new_server(fx.tls_ctx, &fx.tls_port);
	fx.tls_req_ctx = server_ssl_ctx(true);
	fx.tls_req = new_server(fx.tls_req_ctx, &fx.tls_req_port);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_true(strlen(fx.sock_path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, fx.sock_path, strlen(fx.sock_path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_non_null(evhttp_accept_socket_with_handle(fx.plain, fd)); /* owns fd now */

	fx.silent_fd = loopback_socket(true, &fx.silent_port);
	fx.refused_fd = loopback_socket(false, &fx.refused_port);

	assert_int_equal(pipe2(fx.wake, O_CLOEXEC | O_NONBLOCK), 0);
	fx.wake_ev = event_new(fx.base, fx.wake[0], EV_READ, on_wake, NULL);
	assert_non_null(fx.wake_ev);
	assert_int_equal(event_add(fx.wake_ev, NULL), 0);
	assert_int_equal(pthread_create(&fx.thread, NULL, server_thread, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(write(fx.wake[1], "x", 1), 1);
	assert_int_equal(pthread_join(fx.thread, NULL), 0);
	event_free(fx.wake_ev);
	close(fx.wake[0]);
	close(fx.wake[1]);
	evhttp_free(fx.plain);
	evhttp_free(fx.tls);
	evhttp_free(fx.tls_req);
	event_base_free(fx.base);
	SSL_CTX_free(fx.tls_ctx);
	SSL_CTX_free(fx.tls_req_ctx);
	close(fx.silent_fd);
	close(fx.refused_fd);

	X509_free(fx.ca);
	X509_free(fx.other_ca);
	X509_free(fx.server);
	X509_free(fx.client);
	X509_free(fx.inter);
	X509_free(fx.chained);
	EVP_PKEY_free(fx.ca_key);
	EVP_PKEY_free(fx.other_ca_key);
	EVP_PKEY_free(fx.server_key);
	EVP_PKEY_free(fx.client_key);
	EVP_PKEY_free(fx.inter_key);
	EVP_PKEY_free(fx.chained_key);

	unlink(fx.ca_link);
	rmdir(fx.ca_dir);
	unlink(fx.ca_file);
	unlink(fx.other_ca_file);
	unlink(fx.client_cert_file);
	unlink(fx.client_key_file);
	unlink(fx.sock_path);
	assert_int_equal(rmdir(fx.dir), 0);
	return 0;
}

/* ---- helpers ---- */

static const char *header(const struct http_client_response *resp, const char *name)
{
	const char *v = http_client_response_header(resp, name);

	assert_non_null(v);
	return v;
}

static void url(char *out, size_t len, const char *scheme, const char *host, int port,
		const char *path)
{
	snprintf(out, len, "%s://%s:%d%s", scheme, host, port, path);
}

static void expect_failure(struct http_client *c, const struct http_client_request *req, int code,
			   const char *msg)
{
	struct http_client_response resp;
	struct err e = {0};

	assert_int_equal(http_client_perform(c, req, &resp, &e), code);
	assert_string_equal(e.msg, msg);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.n_headers, 0);
	assert_int_equal(resp.body.len, 0);
	http_client_response_free(&resp);
}

/* ---- unix socket ---- */

static void test_unix_get(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	_cleanup_http_client_response_ struct http_client_response resp;
	const struct http_header h[] = {{"X-Test", "hello there"}};
	struct http_client_request req = {
	    .url = "http://test.sock/echo?x=1&y=2",
	    .unix_socket_path = fx.sock_path,
	    .headers = h,
	    .n_headers = 1,
	};
	struct err e = {0};

	assert_non_null(c);
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Method"), "GET");
	/* Lookup ignores case. */
	assert_string_equal(header(&resp, "x-path"), "/echo");
	assert_string_equal(header(&resp, "X-QUERY"), "x=1&y=2");
	assert_string_equal(header(&resp, "X-Test"), "hello there");
	assert_string_equal(header(&resp, "X-Content-Length"), "(none)");
	assert_string_equal(header(&resp, "X-Expect"), "(none)");
	assert_string_equal(header(&resp, "X-User-Agent"), "edgeid/" EDGEID_VERSION);
	assert_string_equal(header(&resp, "content-length"), "0");
	assert_null(http_client_response_header(&resp, "X-Nothing"));
	assert_int_equal(resp.body.len, 0);
	assert_string_equal(buf_str(&resp.body), "");
	assert_int_equal(resp.retry_after_ms, -1);
}

static void test_unix_post_put_delete(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	const char body[] = "{\"registrationId\":\"dev1\"}";
	const struct http_header json[] = {{"Content-Type", "application/json"}};
	struct http_client_request req = {
	    .method = "POST",
	    .url = "http://test.sock/echo",
	    .unix_socket_path = fx.sock_path,
	    .headers = json,
	    .n_headers = 1,
	    .body = body,
	    .body_len = strlen(body),
	};
	struct http_client_response resp;
	struct err e = {0};

	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Method"), "POST");
	assert_string_equal(header(&resp, "X-Content-Type"), "application/json");
	assert_string_equal(header(&resp, "X-Content-Length"), "25");
	assert_int_equal(resp.body.len, strlen(body));
	assert_string_equal(buf_str(&resp.body), body);
	http_client_response_free(&resp);

	req.method = "PUT";
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(header(&resp, "X-Method"), "PUT");
	assert_string_equal(buf_str(&resp.body), body);
	http_client_response_free(&resp);

	/* POST without a body sends an empty one, and no form Content-Type. */
	req.method = "POST";
	req.body = NULL;
	req.body_len = 0;
	req.n_headers = 0;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(header(&resp, "X-Method"), "POST");
	assert_string_equal(header(&resp, "X-Content-Length"), "0");
	assert_string_equal(header(&resp, "X-Content-Type"), "(none)");
	http_client_response_free(&resp);

	req.method = "DELETE";
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(header(&resp, "X-Method"), "DELETE");
	assert_string_equal(header(&resp, "X-Content-Length"), "(none)");
	http_client_response_free(&resp);
	assert_string_equal(e.msg, "");
}

static void test_http_status_is_not_an_error(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp;
	struct http_client_request req = {
	    .url = "http://test.sock/no/such/thing",
	    .unix_socket_path = fx.sock_path,
	};
	struct err e = {0};

	/* No client object: a one-off connection. */
	assert_int_equal(http_client_perform(NULL, &req, &resp, &e), 0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(buf_str(&resp.body), "not here");
	assert_string_equal(e.msg, "");
}

static void test_unix_socket_missing(void **state)
{
	struct http_client_request req = {
	    .url = "http://keyd.sock/keypair",
	    .unix_socket_path = fx.nosock_path,
	};
	char want[PATH_LEN + 64];

	snprintf(want, sizeof(want), "connecting to %s: no such file or directory", fx.nosock_path);
	expect_failure(NULL, &req, -ENOENT, want);
}

/* ---- TCP failures ---- */

static void test_connection_refused(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {0};
	char u[128], want[160];

	url(u, sizeof(u), "http", "127.0.0.1", fx.refused_port, "/x?token=secret");
	req.url = u;
	snprintf(want, sizeof(want), "connecting to http://127.0.0.1:%d: connection refused",
		 fx.refused_port);
	expect_failure(c, &req, -ECONNREFUSED, want);

	url(u, sizeof(u), "https", "127.0.0.1", fx.refused_port, "/x");
	snprintf(want, sizeof(want), "connecting to https://127.0.0.1:%d: connection refused",
		 fx.refused_port);
	expect_failure(c, &req, -ECONNREFUSED, want);
}

static void test_timeout(void **state)
{
	struct http_client_request req = {.timeout_ms = 300};
	char u[128], want[160];

	/* The kernel completes the connection; nobody ever answers. */
	url(u, sizeof(u), "http", "127.0.0.1", fx.silent_port, "/slow?sig=secret#frag");
	req.url = u;
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/slow: timed out after 300 ms",
		 fx.silent_port);
	expect_failure(NULL, &req, -ETIMEDOUT, want);
}

static void test_response_too_large(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {.max_response_bytes = 1000};
	struct http_client_response resp;
	struct err e = {0};
	char u[128], want[160];

	/* Announced by Content-Length. */
	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/big");
	req.url = u;
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/big: response larger than 1000 bytes",
		 fx.plain_port);
	expect_failure(c, &req, -E2BIG, want);

	/* Found while reading a chunked body. */
	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/bigchunked");
	snprintf(want, sizeof(want),
		 "http://127.0.0.1:%d/bigchunked: response larger than 1000 bytes", fx.plain_port);
	expect_failure(c, &req, -E2BIG, want);

	/* Exactly the limit is fine, both ways. */
	req.max_response_bytes = BIG_BODY;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_int_equal(resp.body.len, BIG_BODY);
	assert_int_equal(strspn(buf_str(&resp.body), "y"), BIG_BODY);
	http_client_response_free(&resp);
	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/big");
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_int_equal(resp.body.len, BIG_BODY);
	http_client_response_free(&resp);
	assert_string_equal(e.msg, "");
}

/* ---- Retry-After ---- */

static void test_retry_after_from_server(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {0};
	struct http_client_response resp;
	struct err e = {0};
	char u[128];

	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/retry3");
	req.url = u;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.retry_after_ms, 3000);
	http_client_response_free(&resp);

	/* An HTTP-date 120 s ahead of the server's clock (the same clock). */
	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/retrydate");
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_int_equal(resp.status, 429);
	assert_in_range(resp.retry_after_ms, 100000, 120000);
	http_client_response_free(&resp);
}

static void test_parse_retry_after(void **state)
{
	const time_t t0 = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	int64_t ms = 0;

	assert_int_equal(http_client_parse_retry_after("0", t0, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(http_client_parse_retry_after("120", t0, &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(http_client_parse_retry_after(" 7\t", t0, &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(http_client_parse_retry_after("3600", t0, &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(http_client_parse_retry_after("3601", t0, &ms), 0);
	assert_int_equal(ms, HTTP_CLIENT_RETRY_AFTER_MAX_MS);
	assert_int_equal(http_client_parse_retry_after("99999999999999999999999999", t0, &ms), 0);
	assert_int_equal(ms, HTTP_CLIENT_RETRY_AFTER_MAX_MS);

	/* The three HTTP-date forms, 10 s ahead. */
	assert_int_equal(http_client_parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", t0, &ms),
			 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(http_client_parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", t0, &ms),
			 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(http_client_parse_retry_after("Sun Nov  6 08:49:47 1994", t0, &ms), 0);
	assert_int_equal(ms, 10000);
	/* In the past: now. Far ahead: clamped. */
	assert_int_equal(http_client_parse_retry_after("Sun, 06 Nov 1994 08:49:36 GMT", t0, &ms),
			 0);
	assert_int_equal(ms, 0);
	assert_int_equal(http_client_parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", t0, &ms),
			 0);
	assert_int_equal(ms, HTTP_CLIENT_RETRY_AFTER_MAX_MS);

	ms = 42;
	assert_int_equal(http_client_parse_retry_after("", t0, &ms), -EINVAL);
	assert_int_equal(http_client_parse_retry_after("soon", t0, &ms), -EINVAL);
	assert_int_equal(http_client_parse_retry_after("-5", t0, &ms), -EINVAL);
	assert_int_equal(http_client_parse_retry_after("1.5", t0, &ms), -EINVAL);
	assert_int_equal(http_client_parse_retry_after("12 s", t0, &ms), -EINVAL);
	assert_int_equal(http_client_parse_retry_after("Sun, 99 Nov 1994 08:49:47 GMT", t0, &ms),
			 -EINVAL);
	assert_int_equal(ms, 42);
}

/* ---- connection reuse ---- */

static void expect_same_connection(struct http_client *c, const struct http_client_request *req,
				   bool same)
{
	struct http_client_response r1, r2;
	struct err e = {0};

	assert_int_equal(http_client_perform(c, req, &r1, &e), 0);
	assert_int_equal(http_client_perform(c, req, &r2, &e), 0);
	assert_string_equal(e.msg, "");
	if (same) {
		const char *first = header(&r1, "X-Conn-Requests");
		char *end = NULL;
		char next[32];
		long n;

		/* Whatever came before, the second request is the next one on
		 * the same connection. */
		errno = 0;
		n = strtol(first, &end, 10);
		assert_true(errno == 0 && end != first && *end == '\0' && n > 0);
		snprintf(next, sizeof(next), "%ld", n + 1);
		assert_string_equal(header(&r1, "X-Peer-Port"), header(&r2, "X-Peer-Port"));
		assert_string_equal(header(&r2, "X-Conn-Requests"), next);
	} else {
		assert_string_not_equal(header(&r1, "X-Peer-Port"), header(&r2, "X-Peer-Port"));
		assert_string_equal(header(&r1, "X-Conn-Requests"), "1");
		assert_string_equal(header(&r2, "X-Conn-Requests"), "1");
	}
	http_client_response_free(&r1);
	http_client_response_free(&r2);
}

static void test_keep_alive(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {0};
	char u[128];

	url(u, sizeof(u), "http", "127.0.0.1", fx.plain_port, "/echo");
	req.url = u;
	expect_same_connection(c, &req, true);
	/* Without a client object, every request opens its own connection. */
	expect_same_connection(NULL, &req, false);
}

/* ---- HTTPS ---- */

static void test_https_verified_with_ca(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {.ca_file = fx.ca_file};
	struct http_client_response resp;
	struct err e = {0};
	char u[128];

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_port, "/echo");
	req.url = u;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Client-Cert"), "none");
	http_client_response_free(&resp);

	/* The same trust from a hashed directory. */
	req.ca_file = NULL;
	req.ca_dir = fx.ca_dir;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	http_client_response_free(&resp);

	/* Keep-alive over TLS too. */
	expect_same_connection(c, &req, true);
}

static void test_https_unknown_ca(void **state)
{
	struct http_client_request req = {.ca_file = fx.other_ca_file};
	char u[128], want[256];

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_port, "/echo?sig=x");
	req.url = u;
	snprintf(want, sizeof(want),
		 "https://127.0.0.1:%d/echo: server certificate verification failed: unable to "
		 "get local issuer certificate",
		 fx.tls_port);
	expect_failure(NULL, &req, -EKEYREJECTED, want);

	/* No CA given: the system store, which does not know the test CA. */
	req.ca_file = NULL;
	expect_failure(NULL, &req, -EKEYREJECTED, want);
}

static void test_https_ca_file_unreadable(void **state)
{
	struct http_client_request req = {.ca_file = fx.nosock_path};
	char u[128], want[512];

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_port, "/echo");
	req.url = u;
	snprintf(want, sizeof(want),
		 "https://127.0.0.1:%d/echo: cannot load the CA certificates: error setting "
		 "certificate file: %s",
		 fx.tls_port, fx.nosock_path);
	expect_failure(NULL, &req, -EINVAL, want);
}

static void test_https_host_mismatch(void **state)
{
	struct http_client_request req = {.ca_file = fx.ca_file};
	char u[128], want[256];

	/* The certificate is for IP 127.0.0.1, not the name localhost. */
	url(u, sizeof(u), "https", "localhost", fx.tls_port, "/echo");
	req.url = u;
	snprintf(want, sizeof(want),
		 "https://localhost:%d/echo: server certificate verification failed: SSL: no "
		 "alternative certificate subject name matches target host name 'localhost'",
		 fx.tls_port);
	expect_failure(NULL, &req, -EKEYREJECTED, want);
}

static void test_client_cert_files(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp;
	struct http_client_request req = {
	    .ca_file = fx.ca_file,
	    .client_cert_file = fx.client_cert_file,
	    .client_key_file = fx.client_key_file,
	};
	struct err e = {0};
	char u[128];

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_req_port, "/echo");
	req.url = u;
	assert_int_equal(http_client_perform(NULL, &req, &resp, &e), 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Client-Cert"), "edgeid test client");
}

static void test_client_cert_in_memory(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request req = {
	    .ca_file = fx.ca_file,
	    .client_cert = fx.client,
	    .client_key = fx.client_key,
	};
	struct http_client_response resp;
	struct err e = {0};
	char u[128], want[256];

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_req_port, "/echo");
	req.url = u;
	assert_int_equal(http_client_perform(c, &req, &resp, &e), 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Client-Cert"), "edgeid test client");
	http_client_response_free(&resp);

	/* Connections made with this identity are reused. */
	expect_same_connection(c, &req, true);

	/* A key that is not the certificate's. */
	req.client_key = fx.server_key;
	snprintf(want, sizeof(want),
		 "https://127.0.0.1:%d/echo: cannot use the client certificate: key values "
		 "mismatch",
		 fx.tls_req_port);
	/* (A fresh connection: the client above still holds one for this
	 * certificate, and would reuse it without looking at the key.) */
	expect_failure(NULL, &req, -EINVAL, want);
}

static void test_client_cert_chain(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp;
	STACK_OF(X509) *chain = sk_X509_new_null();
	struct http_client_request req = {
	    .ca_file = fx.ca_file,
	    .client_cert = fx.chained,
	    .client_key = fx.chained_key,
	};
	struct err e = {0};
	char u[128];

	assert_non_null(chain);
	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_req_port, "/echo");
	req.url = u;

	/* Without the intermediate the server cannot verify the client. */
	assert_true(http_client_perform(NULL, &req, &resp, &e) < 0);
	http_client_response_free(&resp);

	assert_true(sk_X509_push(chain, fx.inter) > 0);
	req.client_chain = chain;
	err_clear(&e);
	assert_int_equal(http_client_perform(NULL, &req, &resp, &e), 0);
	sk_X509_free(chain);
	assert_string_equal(e.msg, "");
	assert_int_equal(resp.status, 200);
	assert_string_equal(header(&resp, "X-Client-Cert"), "edgeid chained client");
}

static void test_client_cert_required(void **state)
{
	struct http_client_request req = {.ca_file = fx.ca_file};
	struct http_client_response resp;
	struct err e = {0};
	char u[128], want[128];
	int r;

	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_req_port, "/echo");
	req.url = u;
	r = http_client_perform(NULL, &req, &resp, &e);
	/* TLS 1.3: the handshake completes on the client's side, then the
	 * server's alert or its closed socket meets the request. */
	assert_true(r == -EPIPE || r == -ECONNRESET);
	snprintf(want, sizeof(want), "https://127.0.0.1:%d/echo: connection lost while ",
		 fx.tls_req_port);
	assert_memory_equal(e.msg, want, strlen(want));
	http_client_response_free(&resp);
}

static void test_identity_change_reconnects(void **state)
{
	_cleanup_http_client_ struct http_client *c = http_client_new();
	struct http_client_request anon = {.ca_file = fx.ca_file};
	struct http_client_request mem = {
	    .ca_file = fx.ca_file,
	    .client_cert = fx.client,
	    .client_key = fx.client_key,
	};
	static const char *const want[] = {"none", "edgeid test client", "none",
					   "edgeid test client"};
	char u[128];

	/* The optional-certificate server: a reused connection would report
	 * the identity it was made with. */
	url(u, sizeof(u), "https", "127.0.0.1", fx.tls_port, "/echo");
	anon.url = mem.url = u;
	for (size_t i = 0; i < 4; i++) {
		struct http_client_response resp;
		struct err e = {0};

		assert_int_equal(http_client_perform(c, i % 2 ? &mem : &anon, &resp, &e), 0);
		assert_string_equal(header(&resp, "X-Client-Cert"), want[i]);
		assert_string_equal(header(&resp, "X-Conn-Requests"), "1");
		http_client_response_free(&resp);
	}
}

/* ---- request checks and logs ---- */

static void test_invalid_requests(void **state)
{
	const struct http_header crlf[] = {{"X-Test", "a\r\nInjected: yes"}};
	const struct http_header badname[] = {{"X Test", "a"}};
	struct http_client_request req = {
	    .url = "http://127.0.0.1:1/x?q", .headers = crlf, .n_headers = 1};

	expect_failure(NULL, &req, -EINVAL,
		       "http://127.0.0.1:1/x: invalid value for request header X-Test");
	req.headers = badname;
	expect_failure(NULL, &req, -EINVAL,
		       "http://127.0.0.1:1/x: invalid request header name \"X Test\"");
	req.n_headers = 0;
	req.method = "GET /other";
	expect_failure(NULL, &req, -EINVAL,
		       "http://127.0.0.1:1/x: invalid HTTP method \"GET /other\"");
	req.method = NULL;
	req.client_cert = fx.client;
	expect_failure(NULL, &req, -EINVAL,
		       "http://127.0.0.1:1/x: client certificate and key must be given together");
	req.client_key = fx.client_key;
	req.client_key_file = fx.client_key_file;
	expect_failure(
	    NULL, &req, -EINVAL,
	    "http://127.0.0.1:1/x: client certificate given both as files and in memory");
	req.client_cert = NULL;
	req.client_key = NULL;
	req.client_key_file = NULL;
	req.url = "ftp://127.0.0.1:1/x";
	expect_failure(NULL, &req, -EINVAL,
		       "ftp://127.0.0.1:1/x: invalid URL: Protocol \"ftp\" not supported or "
		       "disabled in libcurl");
	req.url = NULL;
	expect_failure(NULL, &req, -EINVAL, "HTTP request without a URL");
}

static void test_logs_hide_secrets(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp;
	const struct http_header auth[] = {{"Authorization", "SharedAccessSignature sig=SECRET1"}};
	struct http_client_request req = {
	    .method = "POST",
	    .headers = auth,
	    .n_headers = 1,
	    .body = "SECRET2",
	    .body_len = 7,
	};
	_cleanup_free_ char *logged = NULL;
	size_t logged_len = 0;
	FILE *f = open_memstream(&logged, &logged_len);
	enum log_level saved = log_get_level();
	struct err e = {0};
	char u[128], want[128];

	assert_non_null(f);
	snprintf(u, sizeof(u), "http://user:SECRET3@127.0.0.1:%d/echo?sig=SECRET4", fx.plain_port);
	req.url = u;
	log_set_stream(f);
	log_set_level(LOG_LEVEL_DEBUG);
	assert_int_equal(http_client_perform(NULL, &req, &resp, &e), 0);
	log_set_level(saved);
	log_set_stream(NULL);
	assert_int_equal(fclose(f), 0);

	/* The server did get them. */
	assert_string_equal(header(&resp, "X-Authorization"), "SharedAccessSignature sig=SECRET1");
	assert_string_equal(buf_str(&resp.body), "SECRET2");

	snprintf(want, sizeof(want), "http: POST http://127.0.0.1:%d/echo -> 200 (", fx.plain_port);
	assert_non_null(strstr(logged, want));
	assert_null(strstr(logged, "SECRET"));
}

static void test_secret_response(void **state)
{
	_cleanup_http_client_response_ struct http_client_response resp;
	struct http_client_request req = {
	    .method = "POST",
	    .url = "http://test.sock/echo",
	    .unix_socket_path = fx.sock_path,
	    .body = "private",
	    .body_len = 7,
	    .response_secret = true,
	};
	struct err e = {0};

	assert_int_equal(http_client_perform(NULL, &req, &resp, &e), 0);
	assert_true(resp.body.secret);
	assert_string_equal(buf_str(&resp.body), "private");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unix_get),
	    cmocka_unit_test(test_unix_post_put_delete),
	    cmocka_unit_test(test_http_status_is_not_an_error),
	    cmocka_unit_test(test_unix_socket_missing),
	    cmocka_unit_test(test_connection_refused),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_response_too_large),
	    cmocka_unit_test(test_retry_after_from_server),
	    cmocka_unit_test(test_parse_retry_after),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_https_verified_with_ca),
	    cmocka_unit_test(test_https_unknown_ca),
	    cmocka_unit_test(test_https_ca_file_unreadable),
	    cmocka_unit_test(test_https_host_mismatch),
	    cmocka_unit_test(test_client_cert_files),
	    cmocka_unit_test(test_client_cert_in_memory),
	    cmocka_unit_test(test_client_cert_chain),
	    cmocka_unit_test(test_client_cert_required),
	    cmocka_unit_test(test_identity_change_reconnects),
	    cmocka_unit_test(test_invalid_requests),
	    cmocka_unit_test(test_logs_hide_secrets),
	    cmocka_unit_test(test_secret_response),
	};
	static const char *const proxies[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
					      "HTTPS_PROXY", "ALL_PROXY",   "all_proxy"};

	/* Loopback only: no proxy from the environment. */
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	return cmocka_run_group_tests_name("http_client", tests, setup, teardown);
}
