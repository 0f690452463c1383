/* SPDX-License-Identifier: MIT */
/*
 * libcurl, loaded when a process first needs it rather than linked.
 *
 * Every device daemon is the same program (edgeidd), and only identityd
 * makes HTTP requests. Linked, libcurl and the libraries only it needs
 * (GnuTLS, Kerberos, LDAP, libssh2, ...) are mapped into every daemon and
 * cost each one about 480 kB of relocated, private data and 3.8 MB of
 * resident pages. Loaded with dlopen() on first use, they cost only the
 * process that uses them.
 *
 * The curl headers still give the types, constants and prototypes: each
 * entry of the table has the type of the libcurl function it stands for,
 * so calls through it are checked as direct calls would be (all but the
 * option-type checks curl's headers add to curl_easy_setopt() and
 * curl_easy_getinfo() under gcc, which only work on direct calls).
 */
#ifndef EDGEID_DL_CURL_H
#define EDGEID_DL_CURL_H

#include <curl/curl.h>

#include "common/err.h"

/* The library loaded: libcurl's stable ABI. */
#define DL_CURL_SONAME "libcurl.so.4"

/* The libcurl functions edgeid calls, without their "curl_" prefix. */
#define DL_CURL_FUNCTIONS(X)                                                                       \
	X(global_init)                                                                             \
	X(version_info)                                                                            \
	X(easy_init)                                                                               \
	X(easy_setopt)                                                                             \
	X(easy_perform)                                                                            \
	X(easy_getinfo)                                                                            \
	X(easy_reset)                                                                              \
	X(easy_cleanup)                                                                            \
	X(easy_strerror)                                                                           \
	X(slist_append)                                                                            \
	X(slist_free_all)                                                                          \
	X(getdate)                                                                                 \
	X(url)                                                                                     \
	X(url_set)                                                                                 \
	X(url_get)                                                                                 \
	X(url_cleanup)                                                                             \
	X(free)

/* fn.easy_setopt(h, CURLOPT_URL, url) calls curl_easy_setopt(). */
struct dl_curl {
#define DL_CURL_MEMBER(name) __typeof__(curl_##name) *name;
	DL_CURL_FUNCTIONS(DL_CURL_MEMBER)
#undef DL_CURL_MEMBER
};

/*
 * libcurl's functions. The first call in a process loads DL_CURL_SONAME
 * and runs curl_global_init(CURL_GLOBAL_DEFAULT), once (pthread_once);
 * later calls return the same outcome. curl_global_init() is not safe to
 * run while other threads use the libraries it initialises, so a process
 * that starts threads makes its first call before it does.
 *
 * Returns 0 and sets *ret_fn to a table that lives as long as the process
 * (libcurl is never unloaded), or
 *   -ELIBACC  "libcurl.so.4 could not be loaded: <dlerror() text>" (the
 *             library, or one of the functions above, is missing)
 *   -EIO      "libcurl could not be initialised: <curl's reason>"
 * with the sentence in e. *ret_fn is left untouched on failure.
 */
int dl_curl_get(const struct dl_curl **ret_fn, struct err *e);

/*
 * Load soname with dlopen(RTLD_NOW | RTLD_LOCAL) and fill *ret_fn with
 * every function of the table; does not initialise libcurl. On success the
 * library stays loaded for the life of the process. dl_curl_get() uses it
 * with DL_CURL_SONAME; tests use it to see the failures.
 *
 * Returns 0, or -ELIBACC with "<soname> could not be loaded: <dlerror()
 * text>" in e (the library cannot be loaded, or lacks one of the
 * functions; then it is unloaded again and *ret_fn is untouched).
 */
int dl_curl_open(const char *soname, struct dl_curl *ret_fn, struct err *e);

#endif
