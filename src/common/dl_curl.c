/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "common/dl_curl.h"
#include "common/log.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct dl_curl loaded;
static struct err load_err;
static int load_result;

int dl_curl_open(const char *soname, struct dl_curl *ret_fn, struct err *e)
{
	struct dl_curl fn;
	const char *why;
	void *lib, *sym;

	lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		why = dlerror();
		return err_set(e, -ELIBACC, "%s could not be loaded: %s", soname,
			       why ? why : "unknown reason");
	}
	/* The cast from dlsym()'s void * to a function pointer is what POSIX
	 * requires dlsym() to support. */
#define DL_CURL_LOOKUP(name)                                                                       \
	(void)dlerror();                                                                           \
	sym = dlsym(lib, "curl_" #name);                                                           \
	if (!sym)                                                                                  \
		goto missing;                                                                      \
	fn.name = (__typeof__(fn.name))sym;
	DL_CURL_FUNCTIONS(DL_CURL_LOOKUP)
#undef DL_CURL_LOOKUP

	*ret_fn = fn;
	return 0;

missing:
	why = dlerror();
	(void)err_set(e, -ELIBACC, "%s could not be loaded: %s", soname,
		      why ? why : "a libcurl function is missing");
	dlclose(lib);
	return -ELIBACC;
}

static void load(void)
{
	const curl_version_info_data *v;
	CURLcode cc;

	load_result = dl_curl_open(DL_CURL_SONAME, &loaded, &load_err);
	if (load_result < 0) {
		log_debug("http: %s", load_err.msg);
		return;
	}
	cc = loaded.global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK) {
		load_result = err_set(&load_err, -EIO, "libcurl could not be initialised: %s",
				      loaded.easy_strerror(cc));
		log_debug("http: %s", load_err.msg);
		return;
	}
	v = loaded.version_info(CURLVERSION_NOW);
	log_debug("http: loaded %s (libcurl %s, %s)", DL_CURL_SONAME, v ? v->version : "?",
		  v && v->ssl_version ? v->ssl_version : "no TLS");
}

int dl_curl_get(const struct dl_curl **ret_fn, struct err *e)
{
	pthread_once(&load_once, load);
	if (load_result < 0)
		return err_set(e, load_result, "%s", load_err.msg);
	*ret_fn = &loaded;
	return 0;
}
