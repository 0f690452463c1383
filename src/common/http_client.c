/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/dl_curl.h"
#include "common/http_client.h"
#include "common/log.h"
#include "edgeid-version.h"

#define HTTP_CLIENT_USER_AGENT "edgeid/" EDGEID_VERSION
/* Room for URLs and socket paths in messages; longer ones are cut. */
#define URL_SHOWN_MAX 400

struct http_client {
	/* libcurl's functions; NULL when it could not be loaded. */
	const struct dl_curl *fn;
	CURL *curl;
	/* Which client certificate the cached connections and TLS sessions were
	 * made with. curl matches cached connections on its own TLS settings,
	 * which do not include a certificate set through the SSL_CTX callback,
	 * so a change of identity must not find an old connection. */
	unsigned char identity[EVP_MAX_MD_SIZE];
	unsigned identity_len;
};

/* The state of one http_client_perform() call, shared with the callbacks. */
struct transfer {
	const struct http_client_request *req;
	struct http_client_response *resp;
	size_t headers_cap;
	int write_error;      /* why a callback stopped the transfer */
	char ctx_detail[256]; /* why the client certificate could not be used */
	char errbuf[CURL_ERROR_SIZE];
};

int http_client_global_init(struct err *e)
{
	const struct dl_curl *fn;

	return dl_curl_get(&fn, e);
}

struct http_client *http_client_new(void)
{
	struct http_client *c;

	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	/* Load and initialise libcurl now, where the caller sets up (and
	 * before threads it starts use the client). A failure leaves fn NULL
	 * and is reported, as a sentence, by http_client_perform(). */
	(void)dl_curl_get(&c->fn, NULL);
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->curl)
		c->fn->easy_cleanup(c->curl);
	free(c);
}

void http_client_response_free(struct http_client_response *resp)
{
	if (!resp)
		return;
	for (size_t i = 0; i < resp->n_headers; i++)
		free((char *)resp->headers[i].name); /* the value shares the block */
	free(resp->headers);
	resp->headers = NULL;
	resp->n_headers = 0;
	buf_free(&resp->body);
	resp->status = 0;
	resp->retry_after_ms = -1;
}

const char *http_client_response_header(const struct http_client_response *resp, const char *name)
{
	for (size_t i = 0; i < resp->n_headers; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* value without the optional white space around it: the start, and the
 * length in *ret_len. */
static const char *trim_ows(const char *value, size_t *ret_len)
{
	size_t len;

	while (is_ows(*value))
		value++;
	len = strlen(value);
	while (len > 0 && is_ows(value[len - 1]))
		len--;
	*ret_len = len;
	return value;
}

int http_client_parse_date(const char *value, time_t *ret_time)
{
	_cleanup_free_ char *copy = NULL;
	const struct dl_curl *fn;
	size_t len;
	time_t when;
	int r;

	value = trim_ows(value, &len);
	/* Every HTTP-date form has a day or month name and a time. curl's date
	 * parser is lenient, so insist on both before asking it. */
	if (len == 0 || !memchr(value, ':', len) || !strpbrk(value, "JFMASONDjfmasond"))
		return -EINVAL;
	r = dl_curl_get(&fn, NULL);
	if (r < 0)
		return r;
	copy = strndup(value, len);
	if (!copy)
		return -ENOMEM;
	when = fn->getdate(copy, NULL);
	if (when == -1)
		return -EINVAL;
	*ret_time = when;
	return 0;
}

int http_client_parse_retry_after(const char *value, time_t now, int64_t *ret_ms)
{
	const int64_t max_s = HTTP_CLIENT_RETRY_AFTER_MAX_MS / 1000;
	size_t len;
	time_t when;
	int r;

	value = trim_ows(value, &len);
	if (len == 0)
		return -EINVAL;
	if (strspn(value, "0123456789") == len) {
		int64_t s = 0;

		/* Stop counting once past the clamp: no overflow, any length. */
		for (size_t i = 0; i < len && s <= max_s; i++)
			s = s * 10 + (value[i] - '0');
		*ret_ms = (s > max_s ? max_s : s) * 1000;
		return 0;
	}

	r = http_client_parse_date(value, &when);
	if (r < 0)
		return r;
	if (when <= now)
		*ret_ms = 0;
	else if (when - now >= max_s)
		*ret_ms = HTTP_CLIENT_RETRY_AFTER_MAX_MS;
	else
		*ret_ms = (int64_t)(when - now) * 1000;
	return 0;
}

/* The URL as messages and logs show it: no query, fragment or user info
 * (either may carry a secret, e.g. a SAS token or a password). */
static void url_shown(const char *url, char *out, size_t outlen)
{
	size_t end = strcspn(url, "?#");
	const char *scheme_end = strstr(url, "://");

	if (scheme_end && (size_t)(scheme_end - url) < end) {
		const char *auth = scheme_end + 3;
		size_t auth_len = strcspn(auth, "/?#");
		const char *at = NULL;

		for (const char *p = auth; p < auth + auth_len; p++)
			if (*p == '@')
				at = p;
		if (at) {
			snprintf(out, outlen, "%.*s%.*s", (int)(auth - url), url,
				 (int)(end - (size_t)(at + 1 - url)), at + 1);
			return;
		}
	}
	snprintf(out, outlen, "%.*s", (int)end, url);
}

/* "scheme://host:port" for connection errors, or the unix socket path. */
static void connect_target(const struct dl_curl *fn, const struct http_client_request *req,
			   const char *shown, char *out, size_t outlen)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *u;

	if (req->unix_socket_path) {
		snprintf(out, outlen, "%s", req->unix_socket_path);
		return;
	}
	snprintf(out, outlen, "%s", shown);
	u = fn->url();
	if (!u)
		return;
	if (fn->url_set(u, CURLUPART_URL, req->url, 0) == CURLUE_OK &&
	    fn->url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    fn->url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    fn->url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		snprintf(out, outlen, "%s://%s:%s", scheme, host, port);
	fn->free(scheme);
	fn->free(host);
	fn->free(port);
	fn->url_cleanup(u);
}

/* strerror() text starting lower case, to continue a sentence. */
static void errno_text(int errnum, char *out, size_t outlen)
{
	const char *s = strerrordesc_np(errnum);

	if (!s) {
		snprintf(out, outlen, "error %d", errnum);
		return;
	}
	snprintf(out, outlen, "%s", s);
	if (isupper((unsigned char)out[0]) && islower((unsigned char)out[1]))
		out[0] = (char)tolower((unsigned char)out[0]);
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	struct http_client_response *resp = t->resp;
	size_t len = size * n, name_len, value_len;
	const char *colon, *value;
	char *block;

	/* A status line starts a response; drop the headers of interim
	 * (1xx) responses before it. */
	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		for (size_t i = 0; i < resp->n_headers; i++)
			free((char *)resp->headers[i].name);
		resp->n_headers = 0;
		return len;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	colon = memchr(data, ':', len);
	if (len == 0 || !colon || colon == data || is_ows(data[0]))
		return size * n; /* end of headers; obsolete folding is dropped */

	if (resp->n_headers == t->headers_cap) {
		struct http_header *h;
		size_t cap = t->headers_cap ? 2 * t->headers_cap : 16;

		if (resp->n_headers >= HTTP_CLIENT_HEADERS_MAX) {
			t->write_error = -E2BIG;
			return 0;
		}
		if (cap > HTTP_CLIENT_HEADERS_MAX)
			cap = HTTP_CLIENT_HEADERS_MAX;
		h = reallocarray(resp->headers, cap, sizeof(*h));
		if (!h) {
			t->write_error = -ENOMEM;
			return 0;
		}
		resp->headers = h;
		t->headers_cap = cap;
	}

	name_len = (size_t)(colon - data);
	while (name_len > 0 && is_ows(data[name_len - 1]))
		name_len--;
	value = colon + 1;
	value_len = len - (size_t)(value - data);
	while (value_len > 0 && is_ows(*value)) {
		value++;
		value_len--;
	}
	while (value_len > 0 && is_ows(value[value_len - 1]))
		value_len--;

	block = malloc(name_len + value_len + 2);
	if (!block) {
		t->write_error = -ENOMEM;
		return 0;
	}
	memcpy(block, data, name_len);
	block[name_len] = '\0';
	memcpy(block + name_len + 1, value, value_len);
	block[name_len + 1 + value_len] = '\0';
	resp->headers[resp->n_headers].name = block;
	resp->headers[resp->n_headers].value = block + name_len + 1;
	resp->n_headers++;
	return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	int r = buf_append(&t->resp->body, data, size * n);

	if (r < 0) {
		t->write_error = r;
		return 0;
	}
	return size * n;
}

static void openssl_detail(char *out, size_t outlen)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code ? ERR_reason_error_string(code) : NULL;

	snprintf(out, outlen, "%s", reason ? reason : "unknown OpenSSL error");
	ERR_clear_error();
}

/* Install the in-memory client certificate on the SSL_CTX curl made for a
 * new connection. The key only has to sign: a provider-held key works. */
static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *userdata)
{
	struct transfer *t = userdata;
	const struct http_client_request *req = t->req;
	SSL_CTX *ctx = sslctx;

	if (SSL_CTX_use_certificate(ctx, req->client_cert) != 1) {
		openssl_detail(t->ctx_detail, sizeof(t->ctx_detail));
		return CURLE_SSL_CERTPROBLEM;
	}
	for (int i = 0; req->client_chain && i < sk_X509_num(req->client_chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(req->client_chain, i)) != 1) {
			openssl_detail(t->ctx_detail, sizeof(t->ctx_detail));
			return CURLE_SSL_CERTPROBLEM;
		}
	}
	/* Also checks that the key belongs to the certificate. */
	if (SSL_CTX_use_PrivateKey(ctx, req->client_key) != 1) {
		openssl_detail(t->ctx_detail, sizeof(t->ctx_detail));
		return CURLE_SSL_CERTPROBLEM;
	}
	return CURLE_OK;
}

/* A digest naming the client identity a request uses. */
static int request_identity(const struct http_client_request *req, unsigned char *ret,
			    unsigned *ret_len)
{
	_cleanup_buf_ struct buf b = {0};

	if (req->client_cert) {
		if (X509_digest(req->client_cert, EVP_sha256(), ret, ret_len) != 1)
			return -ENOMEM;
		return 0;
	}
	buf_init(&b, 0);
	if (req->client_cert_file && buf_printf(&b, "file\n%s\n%s", req->client_cert_file,
						strempty(req->client_key_file)) < 0)
		return -ENOMEM;
	if (EVP_Digest(buf_str(&b), b.len, ret, ret_len, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	return 0;
}

static bool is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static int check_request(const struct http_client_request *req, const char *shown, struct err *e)
{
	if (!req->url || !*req->url)
		return err_set(e, -EINVAL, "HTTP request without a URL");
	if (req->method && !is_token(req->method))
		return err_set(e, -EINVAL, "%s: invalid HTTP method \"%s\"", shown, req->method);
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (!h->name || !is_token(h->name))
			return err_set(e, -EINVAL, "%s: invalid request header name \"%s\"", shown,
				       strempty(h->name));
		if (!h->value || strpbrk(h->value, "\r\n"))
			return err_set(e, -EINVAL, "%s: invalid value for request header %s", shown,
				       h->name);
	}
	if ((req->client_cert_file || req->client_key_file) &&
	    (req->client_cert || req->client_key))
		return err_set(e, -EINVAL,
			       "%s: client certificate given both as files and in memory", shown);
	if (!req->client_cert_file != !req->client_key_file ||
	    !req->client_cert != !req->client_key)
		return err_set(e, -EINVAL, "%s: client certificate and key must be given together",
			       shown);
	return 0;
}

static int build_headers(const struct dl_curl *fn, const struct http_client_request *req,
			 struct curl_slist **ret)
{
	struct curl_slist *list = NULL, *l;
	bool content_type = false;
	_cleanup_buf_ struct buf line;

	buf_init(&line, 0);
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (strcasecmp(h->name, "Content-Type") == 0)
			content_type = true;
		buf_reset(&line);
		/* "Name;" is curl's way to send a header with an empty value. */
		if (buf_printf(&line, *h->value ? "%s: %s" : "%s;", h->name, h->value) < 0)
			goto oom;
		l = fn->slist_append(list, buf_str(&line));
		if (!l)
			goto oom;
		list = l;
	}
	/* No "Expect: 100-continue" round trip, and no form Content-Type that
	 * curl would add to a body the caller did not label. */
	l = fn->slist_append(list, "Expect:");
	if (!l)
		goto oom;
	list = l;
	if (!content_type) {
		l = fn->slist_append(list, "Content-Type:");
		if (!l)
			goto oom;
		list = l;
	}
	*ret = list;
	return 0;

oom:
	fn->slist_free_all(list);
	return -ENOMEM;
}

#define SETOPT(h, opt, val)                                                                        \
	do {                                                                                       \
		CURLcode _cc = fn->easy_setopt((h), (opt), (val));                                 \
		if (_cc != CURLE_OK)                                                               \
			return _cc;                                                                \
	} while (0)

static CURLcode configure(const struct dl_curl *fn, CURL *h, const struct http_client_request *req,
			  struct transfer *t, struct curl_slist *headers)
{
	const char *method = req->method ? req->method : "GET";
	unsigned timeout = req->timeout_ms ? req->timeout_ms : HTTP_CLIENT_TIMEOUT_DEFAULT_MS;
	unsigned connect_timeout = req->connect_timeout_ms ? req->connect_timeout_ms
							   : HTTP_CLIENT_CONNECT_TIMEOUT_DEFAULT_MS;
	const void *body = req->body;

	SETOPT(h, CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)timeout);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout);
	if (t->resp->body.max <= (size_t)INT64_MAX)
		SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->resp->body.max);
	SETOPT(h, CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(h, CURLOPT_USERAGENT, HTTP_CLIENT_USER_AGENT);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_HEADERDATA, t);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(h, CURLOPT_WRITEDATA, t);
	SETOPT(h, CURLOPT_HTTPHEADER, headers);

	if (!body && (streq(method, "POST") || streq(method, "PUT") || streq(method, "PATCH")))
		body = "";
	if (streq(method, "HEAD")) {
		SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (body) {
		SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SETOPT(h, CURLOPT_POSTFIELDS, body);
		if (!streq(method, "POST"))
			SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
	} else {
		SETOPT(h, CURLOPT_HTTPGET, 1L);
		if (!streq(method, "GET"))
			SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
	}

	if (req->unix_socket_path)
		SETOPT(h, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket_path);

	SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->ca_file || req->ca_dir) {
		/* Only the given trust: NULL clears curl's built-in default. */
		SETOPT(h, CURLOPT_CAINFO, req->ca_file);
		SETOPT(h, CURLOPT_CAPATH, req->ca_dir);
	}
	if (req->client_cert_file) {
		SETOPT(h, CURLOPT_SSLCERT, req->client_cert_file);
		SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
		SETOPT(h, CURLOPT_SSLKEY, req->client_key_file);
		SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (req->client_cert) {
		SETOPT(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		SETOPT(h, CURLOPT_SSL_CTX_DATA, t);
	}
	return CURLE_OK;
}

/* Turn a failed transfer into an errno and one sentence. The only place
 * that interprets CURLcode. */
static int transfer_error(const struct dl_curl *fn, CURL *h, CURLcode cc, const struct transfer *t,
			  const char *shown, struct err *e)
{
	const struct http_client_request *req = t->req;
	const char *detail = t->errbuf[0] ? t->errbuf : fn->easy_strerror(cc);
	char target[URL_SHOWN_MAX + 32], text[128];
	long os_errno = 0, verify = X509_V_OK;
	curl_off_t connected = 0;

	log_debug("http: %s: curl error %d: %s", shown, (int)cc, detail);
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		connect_target(fn, req, shown, target, sizeof(target));
		if (fn->easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK || os_errno <= 0)
			return err_set(e, -ECONNREFUSED, "connecting to %s: %s", target, detail);
		errno_text((int)os_errno, text, sizeof(text));
		return err_set(e, -(int)os_errno, "connecting to %s: %s", target, text);

	case CURLE_COULDNT_RESOLVE_HOST: {
		char *host = NULL;
		CURLU *u = fn->url();
		int r;

		if (u && fn->url_set(u, CURLUPART_URL, req->url, 0) == CURLUE_OK &&
		    fn->url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
			r = err_set(e, -EHOSTUNREACH, "%s: cannot resolve host name %s", shown,
				    host);
		else
			r = err_set(e, -EHOSTUNREACH, "%s: %s", shown, detail);
		fn->free(host);
		fn->url_cleanup(u);
		return r;
	}
	case CURLE_COULDNT_RESOLVE_PROXY:
		return err_set(e, -EHOSTUNREACH, "%s: %s", shown, detail);

	case CURLE_OPERATION_TIMEDOUT: {
		unsigned timeout =
		    req->timeout_ms ? req->timeout_ms : HTTP_CLIENT_TIMEOUT_DEFAULT_MS;
		unsigned connect_timeout = req->connect_timeout_ms
					       ? req->connect_timeout_ms
					       : HTTP_CLIENT_CONNECT_TIMEOUT_DEFAULT_MS;

		if (fn->easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected) == CURLE_OK &&
		    connected == 0) {
			connect_target(fn, req, shown, target, sizeof(target));
			return err_set(e, -ETIMEDOUT, "connecting to %s: timed out after %u ms",
				       target,
				       connect_timeout < timeout ? connect_timeout : timeout);
		}
		return err_set(e, -ETIMEDOUT, "%s: timed out after %u ms", shown, timeout);
	}

	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		/* OpenSSL's reason when the chain failed; curl's otherwise (it checks
		 * the host name itself and then reports "unspecified"). */
		if (fn->easy_getinfo(h, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK &&
		    verify != X509_V_OK && verify != X509_V_ERR_UNSPECIFIED)
			detail = X509_verify_cert_error_string(verify);
		return err_set(e, -EKEYREJECTED, "%s: server certificate verification failed: %s",
			       shown, detail);

	case CURLE_SSL_CACERT_BADFILE:
		return err_set(e, -EINVAL, "%s: cannot load the CA certificates: %s", shown,
			       detail);

	case CURLE_SSL_CERTPROBLEM:
		return err_set(e, -EINVAL, "%s: cannot use the client certificate: %s", shown,
			       t->ctx_detail[0] ? t->ctx_detail : detail);

	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CIPHER:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
		return err_set(e, -EPROTO, "%s: TLS handshake failed: %s", shown, detail);

	case CURLE_WRITE_ERROR:
		if (t->write_error == -E2BIG && t->resp->n_headers >= HTTP_CLIENT_HEADERS_MAX)
			return err_set(e, -E2BIG, "%s: response has more than %d header fields",
				       shown, HTTP_CLIENT_HEADERS_MAX);
		if (t->write_error == -E2BIG)
			return err_set(e, -E2BIG, "%s: response larger than %zu bytes", shown,
				       t->resp->body.max);
		if (t->write_error == -ENOMEM)
			return -ENOMEM;
		return err_set(e, -EIO, "%s: %s", shown, detail);

	case CURLE_FILESIZE_EXCEEDED:
		return err_set(e, -E2BIG, "%s: response larger than %zu bytes", shown,
			       t->resp->body.max);

	case CURLE_GOT_NOTHING:
		return err_set(e, -ECONNRESET,
			       "%s: the server closed the connection without a response", shown);

	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		/* The system's reason when there is one; otherwise curl's, which
		 * carries a TLS alert from the server (e.g. a refused client
		 * certificate). */
		if (fn->easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0) {
			errno_text((int)os_errno, text, sizeof(text));
			detail = text;
		} else {
			os_errno = ECONNRESET;
		}
		return err_set(e, -(int)os_errno, "%s: connection lost while %s: %s", shown,
			       cc == CURLE_SEND_ERROR ? "sending the request"
						      : "receiving the response",
			       detail);

	case CURLE_PARTIAL_FILE:
		return err_set(e, -EBADMSG, "%s: response truncated: %s", shown, detail);

	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return err_set(e, -EBADMSG, "%s: malformed response: %s", shown, detail);

	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return err_set(e, -EINVAL, "%s: invalid URL: %s", shown, detail);

	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;

	default:
		return err_set(e, -EIO, "%s: %s", shown, detail);
	}
}

/*
 * OpenSSL writes to sockets with write(), so a peer that has closed the
 * connection raises SIGPIPE, which would end a process that has not ignored
 * it. curl's own protection changes the process-wide disposition, which is
 * not safe with threads (and CURLOPT_NOSIGNAL turns it off). Instead block
 * SIGPIPE in this thread during the transfer and discard any raised by it.
 */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_restore(const struct sigpipe_guard *g)
{
	const struct timespec zero = {0, 0};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending)
		while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* A curl handle ready for a request by identity: the client's own when its
 * connections were made with the same client certificate. */
static int client_handle(struct http_client *c, const struct http_client_request *req)
{
	unsigned char id[EVP_MAX_MD_SIZE];
	unsigned id_len = 0;
	int r;

	r = request_identity(req, id, &id_len);
	if (r < 0)
		return r;
	if (c->curl && (id_len != c->identity_len || CRYPTO_memcmp(id, c->identity, id_len) != 0)) {
		c->fn->easy_cleanup(c->curl);
		c->curl = NULL;
	}
	if (c->curl) {
		c->fn->easy_reset(c->curl);
		return 0;
	}
	c->curl = c->fn->easy_init();
	if (!c->curl)
		return -ENOMEM;
	memcpy(c->identity, id, id_len);
	c->identity_len = id_len;
	return 0;
}

int http_client_perform(struct http_client *c, const struct http_client_request *req,
			struct http_client_response *ret_resp, struct err *e)
{
	_cleanup_http_client_ struct http_client *own = NULL;
	struct curl_slist *headers = NULL;
	struct transfer t = {.req = req, .resp = ret_resp};
	const struct dl_curl *fn;
	char shown[URL_SHOWN_MAX];
	const char *value;
	curl_off_t usec = 0;
	CURLcode cc;
	size_t max;
	int r;

	memset(ret_resp, 0, sizeof(*ret_resp));
	ret_resp->retry_after_ms = -1;
	max = req->max_response_bytes ? req->max_response_bytes : HTTP_CLIENT_RESPONSE_MAX_DEFAULT;
	if (req->response_secret)
		buf_init_secret(&ret_resp->body, max);
	else
		buf_init(&ret_resp->body, max);

	url_shown(strempty(req->url), shown, sizeof(shown));
	r = check_request(req, shown, e);
	if (r < 0)
		return r;

	if (!c) {
		own = http_client_new();
		if (!own)
			return -ENOMEM;
		c = own;
	}
	if (!c->fn) {
		r = dl_curl_get(&c->fn, e);
		if (r < 0)
			return r;
	}
	fn = c->fn;
	r = client_handle(c, req);
	if (r < 0)
		return r;
	r = build_headers(fn, req, &headers);
	if (r < 0)
		return r;

	cc = configure(fn, c->curl, req, &t, headers);
	if (cc == CURLE_OK) {
		struct sigpipe_guard g;

		sigpipe_block(&g);
		cc = fn->easy_perform(c->curl);
		sigpipe_restore(&g);
	}
	if (cc == CURLE_OK)
		cc = fn->easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &ret_resp->status);
	/* The list and errbuf are ours; curl must not keep pointers to them. */
	fn->easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	fn->easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	fn->slist_free_all(headers);

	if (cc != CURLE_OK) {
		r = transfer_error(fn, c->curl, cc, &t, shown, e);
		http_client_response_free(ret_resp);
		return r;
	}

	value = http_client_response_header(ret_resp, "Retry-After");
	if (value &&
	    http_client_parse_retry_after(value, time(NULL), &ret_resp->retry_after_ms) < 0)
		ret_resp->retry_after_ms = -1;

	(void)fn->easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &usec);
	log_debug("http: %s %s -> %ld (%" PRId64 " ms)", req->method ? req->method : "GET", shown,
		  ret_resp->status, (int64_t)(usec / 1000));
	return 0;
}
