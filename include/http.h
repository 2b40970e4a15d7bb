/* SPDX-License-Identifier: MIT */
/*
 * http: every use of libcurl. A pool of easy handles kept alive between
 * requests (one per request in flight), DNS and TLS sessions shared,
 * timeouts, the X-RateLimit-* and Retry-After headers read, and a cap on
 * body size. HTTP status codes and curl errors become errno here and
 * nowhere else. http_attempt is the one call that blocks on the
 * network; no other call here waits for it.
 */
#ifndef MIXPEEKFS_HTTP_H
#define MIXPEEKFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* The longest header line sent (the key's, the namespace's). */
#define HTTP_HEADER_MAX 8192

struct http_config {
	const char *base_url;  /* from http_parse_base(); no trailing / */
	const char *api_key;   /* goes only into the Authorization header */
	const char *namespace; /* X-Namespace, or NULL */
	const char *ca_file;   /* CA bundle to trust, or NULL: the system's */
	const char *ca_dir;    /* CA directory to trust, or NULL */
	long connect_timeout_ms;
	long timeout_ms;   /* one request, every attempt included */
	long key_retry_ms; /* after a 401/403, ask again this seldom */
	unsigned retries;  /* extra attempts after the first */
	size_t max_body;
};

/* What an answer said of the API's limits (absent: -1). */
struct http_limits {
	bool headers; /* X-RateLimit-Limit and -Window came */
	long limit, remaining, window;
	double reset;	    /* X-RateLimit-Reset: a Unix time */
	double retry_after; /* Retry-After, in seconds */
};

struct http_response {
	long status; /* 0 when no response arrived */
	struct buf body;
	unsigned attempts; /* sched.c counts them */
	bool retry;	   /* another attempt may do better: 408, 429, 5xx,
			    * a cut or garbled 2xx, a network error */
	bool grew;	   /* ended on passing HTTP_BIG: no big slot in time */
	bool big;	   /* holds the big slot until released */
	int key_change;	   /* 1: the first to refuse the key; -1: the
			    * first to accept it after that; else 0 */
	struct http_limits lim;
	char error[256]; /* what went wrong, for the log; never secret */
};

/* A base URL as libcurl parses it. */
struct http_base {
	char *url;  /* malloc'd: scheme://host[:port][/path] */
	char *host; /* malloc'd: as libcurl sees it ([::1]) */
	bool https;
	bool loopback; /* 127.0.0.0/8, [::1] or localhost */
};

/*
 * Parse url with libcurl's URL API: http or https, a host, no user name
 * or password, no query, no fragment. On failure err says why without
 * repeating the URL (it may hold a password). 0, -EINVAL or -ENOMEM.
 * Call it after http_global_init() or curl_global_init(): it uses curl.
 */
int http_parse_base(const char *url, struct http_base *out, char *err,
		    size_t size);
void http_base_release(struct http_base *b);
/*
 * url as a message may show it: scheme, host, port and path, never a
 * user name, password, query or fragment (where a token may hide); "(not
 * a URL)" if libcurl cannot parse it. Control bytes escaped.
 */
void http_url_shown(const char *url, char *out, size_t size);

/*
 * Once, before any thread starts. Copies cfg; the key is kept only in
 * the Authorization header line. -EINVAL if the key or the namespace
 * holds a control byte. 0 or -errno.
 */
int http_global_init(const struct http_config *cfg);
/* Drop pooled handles and curl's global state; wipe the key. */
void http_global_cleanup(void);
/*
 * End every transfer in flight (within about a second), and fail
 * attempts from now on with -EIO: for shutdown (sched_abort ends the
 * waits). Safe from any thread; never blocks.
 */
void http_abort_all(void);
/* Close idle pooled connections (before fork). */
void http_drop_idle(void);

/*
 * One attempt at one request to base_url + path (path includes the
 * query), bounded by timeout_ms; body NULL for a GET. sched.c is the one
 * caller (the budget, the order and the retries are its). Returns 0 for
 * a 2xx, else -errno from http_status_errno() or a transport error;
 * resp is filled either way (http_response_init'd here) and must be
 * released with http_response_release(). A 2xx whose body usable (if
 * not NULL) refuses is -EIO, like a 5xx. Blocks for up to timeout_ms.
 * Thread-safe.
 */
typedef bool (*http_usable)(const char *body, size_t len);
int http_attempt(const char *method, const char *path, const char *body,
		 long timeout_ms, http_usable usable,
		 struct http_response *resp);
/*
 * Decoded bytes one answer may take before it counts as big. One big
 * answer at a time: one that passes this waits, inside its transfer, for
 * the big slot (for half its timeout at most, then it ends with
 * resp->grew and the scheduler sends it again) and holds the slot until
 * its response is released, that is parsed. So the answers alive take at
 * most max_connections times this, plus one max_response, whatever they
 * are compressed to on the wire.
 */
#define HTTP_BIG ((size_t)4 << 20)

/*
 * One header line of an answer (as libcurl gives it, CRLF included, not
 * NUL-terminated) into lim: the X-RateLimit-* numbers and Retry-After;
 * anything else, malformed or over 12 digits leaves lim as it was or -1.
 * Thread-safe, does not block.
 */
void http_parse_header(const char *line, size_t len, struct http_limits *lim);
void http_response_init(struct http_response *resp);
void http_response_release(struct http_response *resp);
/*
 * Whether a request may go out at all: not after http_abort_all, and
 * after the API refused the key, one request per key_retry_ms (this
 * call lets it through). If not, resp->error says why. Never blocks.
 */
bool http_key_gate(struct http_response *resp);
/* After a rejected key, let the next request through at once (a refresh
 * asked for by hand). Never blocks. */
void http_retry_key(void);
/*
 * The API refused the key (a 401; a 403 the probe request confirmed):
 * from now on requests fail with EACCES unsent, but one per
 * key_retry_ms. Sets resp->key_change (1: the first to say so).
 */
void http_key_refused(struct http_response *resp);
long http_key_retry_ms(void);

/* libcurl's version, for .mixpeekfs/version. */
const char *http_version(void);

/* The one mapping from HTTP status to errno (0 for 2xx). */
int http_status_errno(long status);

/* Percent-encode s for a URL path segment or query value. malloc'd. */
char *http_escape(const char *s);

#endif
