/* SPDX-License-Identifier: MIT */
/*
 * http: every use of libcurl. A pool of easy handles kept alive between
 * requests (one per concurrent worker), DNS and TLS sessions shared,
 * timeouts, bounded retries with backoff, and a cap on body size. HTTP
 * status codes and curl errors become errno here and nowhere else.
 */
#ifndef MIXPEEKFS_HTTP_H
#define MIXPEEKFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct http_config {
	const char *base_url;	/* no trailing slash */
	const char *api_key;	/* goes only into the Authorization header */
	const char *namespace;	/* X-Namespace, or NULL */
	long connect_timeout_ms;
	long timeout_ms;	/* per attempt */
	unsigned retries;	/* extra attempts after the first */
	size_t max_body;
};

struct http_response {
	long status;		/* 0 when no response arrived */
	struct buf body;
	unsigned attempts;
	char error[256];	/* what went wrong, for the log; never secret */
};

/* Once, before any thread starts. Copies cfg. 0 or -errno. */
int http_global_init(const struct http_config *cfg);
/* Drop pooled handles and curl's global state. */
void http_global_cleanup(void);
/* Close idle pooled connections (before fork). */
void http_drop_idle(void);

/*
 * Perform one request (with retries) to base_url + path (path includes
 * the query). body may be NULL for GET. Returns 0 for a 2xx response,
 * else -errno from http_status_errno() or a transport error; resp is
 * filled either way and must be released with http_response_release().
 */
int http_request(const char *method, const char *path, const char *body,
		 struct http_response *resp);
void http_response_release(struct http_response *resp);

/* libcurl's version, for .mixpeekfs/version. */
const char *http_version(void);

/* The one mapping from HTTP status to errno (0 for 2xx). */
int http_status_errno(long status);

/* Percent-encode s for a URL path segment or query value. malloc'd. */
char *http_escape(const char *s);

#endif
