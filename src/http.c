// SPDX-License-Identifier: MIT
/*
 * http: the only user of libcurl. Easy handles live in a small pool and
 * are reused, so connections stay alive across requests; a share handle
 * carries DNS and TLS sessions between them (never connections, which
 * libcurl does not allow across threads).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "stats.h"
#include "log.h"

#define POOL_MAX 32
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000
#define RETRY_AFTER_CAP_MS 30000

static struct {
	struct http_config cfg;
	struct curl_slist *headers;	/* read-only after init */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];		/* protected by pool_lock */
	int npool;			/* protected by pool_lock */
	bool ready;
} http;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *u)
{
	(void)h; (void)a; (void)u;
	pthread_mutex_lock(&http.share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h; (void)u;
	pthread_mutex_unlock(&http.share_locks[data]);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int http_global_init(const struct http_config *cfg)
{
	struct buf auth = BUF_INIT(8192);
	struct curl_slist *h = NULL, *t;
	int i;

	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -EIO;
	http.cfg = *cfg;
	http.cfg.base_url = dup_or_null(cfg->base_url);
	http.cfg.api_key = NULL;	/* kept only inside the header list */
	http.cfg.namespace = dup_or_null(cfg->namespace);
	if (buf_printf(&auth, "Authorization: Bearer %s", cfg->api_key))
		return -ENOMEM;
	t = curl_slist_append(h, buf_str(&auth));
	explicit_bzero(auth.data, auth.len);
	buf_release(&auth);
	if (!t)
		return -ENOMEM;
	h = t;
	h = curl_slist_append(h, "Accept: application/json");
	h = h ? curl_slist_append(h, "Content-Type: application/json") : h;
	h = h ? curl_slist_append(h, "Expect:") : h;
	if (h && cfg->namespace) {
		struct buf ns = BUF_INIT(4096);

		if (buf_printf(&ns, "X-Namespace: %s", cfg->namespace))
			return -ENOMEM;
		h = curl_slist_append(h, buf_str(&ns));
		buf_release(&ns);
	}
	if (!h || !http.cfg.base_url)
		return -ENOMEM;
	http.headers = h;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http.share_locks[i], NULL);
	pthread_mutex_init(&http.pool_lock, NULL);
	http.share = curl_share_init();
	if (http.share) {
		curl_share_setopt(http.share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(http.share, CURLSHOPT_UNLOCKFUNC,
				  share_unlock);
		curl_share_setopt(http.share, CURLSHOPT_SHARE,
				  CURL_LOCK_DATA_DNS);
		curl_share_setopt(http.share, CURLSHOPT_SHARE,
				  CURL_LOCK_DATA_SSL_SESSION);
	}
	http.ready = true;
	return 0;
}

void http_drop_idle(void)
{
	pthread_mutex_lock(&http.pool_lock);
	while (http.npool > 0)
		curl_easy_cleanup(http.pool[--http.npool]);
	pthread_mutex_unlock(&http.pool_lock);
}

void http_global_cleanup(void)
{
	struct curl_slist *h;

	if (!http.ready)
		return;
	http_drop_idle();
	if (http.share)
		curl_share_cleanup(http.share);
	/* wipe the header list, which holds the key */
	for (h = http.headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(http.headers);
	free((char *)http.cfg.base_url);
	free((char *)http.cfg.namespace);
	curl_global_cleanup();
	memset(&http, 0, sizeof(http));
}

static CURL *handle_get(void)
{
	CURL *c = NULL;

	pthread_mutex_lock(&http.pool_lock);
	if (http.npool > 0)
		c = http.pool[--http.npool];
	pthread_mutex_unlock(&http.pool_lock);
	if (c)
		return c;
	c = curl_easy_init();
	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mixpeekfs/" "0.1");
	if (http.share)
		curl_easy_setopt(c, CURLOPT_SHARE, http.share);
	return c;
}

static void handle_put(CURL *c)
{
	pthread_mutex_lock(&http.pool_lock);
	if (http.npool < POOL_MAX) {
		http.pool[http.npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&http.pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

struct xfer {
	struct buf *body;
	long retry_after_ms;	/* -1: none given */
	bool too_big;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (buf_add(x->body, data, n)) {
		x->too_big = true;
		return 0;	/* aborts the transfer */
	}
	return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	static const char name[] = "retry-after:";
	struct xfer *x = ud;
	size_t n = size * nmemb, len = sizeof(name) - 1;
	char value[128];
	char *end;
	long secs;

	if (n <= len || strncasecmp(data, name, len))
		return n;
	snprintf(value, sizeof(value), "%.*s", (int)(n - len), data + len);
	secs = strtol(value, &end, 10);
	if (end != value && secs >= 0) {
		x->retry_after_ms = secs * 1000;
	} else {
		time_t when = curl_getdate(value, NULL);

		if (when > 0)
			x->retry_after_ms = (long)(when - time(NULL)) * 1000;
		if (x->retry_after_ms < 0 && when > 0)
			x->retry_after_ms = 0;
	}
	return n;
}

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 400:
	case 422:
		return -EINVAL;
	default:
		return -EIO;	/* 408, 429, 5xx, anything else */
	}
}

static bool retryable_status(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

static bool retryable_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	default:
		return false;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Exponential backoff with full jitter, or the server's Retry-After. */
static long backoff_ms(unsigned attempt, long retry_after_ms)
{
	unsigned seed = (unsigned)now_ms() ^ (unsigned)attempt;
	long cap = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);

	if (retry_after_ms >= 0)
		return retry_after_ms < RETRY_AFTER_CAP_MS ?
		       retry_after_ms : RETRY_AFTER_CAP_MS;
	if (cap > BACKOFF_CAP_MS)
		cap = BACKOFF_CAP_MS;
	return cap / 2 + rand_r(&seed) % (cap / 2 + 1);
}

static CURLcode perform(CURL *c, const char *method, const char *url,
			const char *body, long timeout_ms, struct xfer *x)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, http.headers);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 http.cfg.connect_timeout_ms < timeout_ms ?
			 http.cfg.connect_timeout_ms : timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	return curl_easy_perform(c);
}

/* Which counter of .mixpeekfs/stats a request goes to. */
static enum stats_endpoint endpoint_of(const char *method, const char *path)
{
	if (!strcmp(method, "POST") && !strncmp(path, "/v1/tasks/list", 14))
		return STATS_LIST;
	if (!strcmp(method, "GET") && !strncmp(path, "/v1/tasks/", 10))
		return STATS_GET;
	return STATS_OTHER;
}

int http_request(const char *method, const char *path, const char *body,
		 struct http_response *resp)
{
	enum stats_endpoint ep = endpoint_of(method, path);
	long deadline = now_ms() + http.cfg.timeout_ms, left, wait;
	struct buf url = BUF_INIT(65536);
	unsigned attempt;
	CURL *c;
	int res = -EIO;

	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, http.cfg.max_body);
	if (buf_printf(&url, "%s%s", http.cfg.base_url, path))
		return -ENOMEM;
	c = handle_get();
	if (!c) {
		buf_release(&url);
		return -ENOMEM;
	}
	for (attempt = 0; attempt <= http.cfg.retries; attempt++) {
		struct xfer x = { &resp->body, -1, false };
		CURLcode rc;

		left = deadline - now_ms();
		if (left <= 0) {
			snprintf(resp->error, sizeof(resp->error),
				 "gave up after %u attempts: timeout",
				 attempt);
			res = -EIO;
			break;
		}
		buf_release(&resp->body);
		resp->status = 0;
		resp->attempts = attempt + 1;
		rc = perform(c, method, buf_str(&url), body, left, &x);
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE,
					  &resp->status);
		stats_request(ep, resp->status);
		stats_add(STATS_BYTES, resp->body.len);
		if (rc == CURLE_OK) {
			res = http_status_errno(resp->status);
			snprintf(resp->error, sizeof(resp->error), "HTTP %ld",
				 resp->status);
			if (!res || !retryable_status(resp->status))
				break;
		} else {
			snprintf(resp->error, sizeof(resp->error), "%s",
				 x.too_big ? "response body exceeds the cap"
				 " (max_response)" : curl_easy_strerror(rc));
			res = -EIO;
			if (x.too_big || !retryable_curl(rc))
				break;
		}
		if (attempt == http.cfg.retries)
			break;
		wait = backoff_ms(attempt, x.retry_after_ms);
		if (now_ms() + wait >= deadline)
			break;
		log_debug("%s %s: %s, retry %u in %ld ms", method, path,
			  resp->error, attempt + 1, wait);
		stats_add(STATS_RETRIES, 1);
		sleep_ms(wait);
	}
	handle_put(c);
	buf_release(&url);
	return res;
}

const char *http_version(void)
{
	return curl_version_info(CURLVERSION_NOW)->version;
}

void http_response_release(struct http_response *resp)
{
	buf_release(&resp->body);
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	const char *p;
	int res = 0;

	if (!e)
		return NULL;
	/* dots too: a path segment "." or ".." would be resolved away */
	for (p = e; *p && !res; p++)
		res = *p == '.' ? buf_addstr(&b, "%2E") : buf_addch(&b, *p);
	curl_free(e);
	return res ? NULL : buf_detach(&b, NULL);
}
