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

#include <arpa/inet.h>

#include <curl/curl.h>

#include "config.h"
#include "http.h"
#include "stats.h"
#include "log.h"
#include "text.h"

#define POOL_MAX 32

static struct {
	struct http_config cfg;
	struct curl_slist *headers;	/* read-only after init */
	struct curl_slist *get_headers; /* the same but Content-Type */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX]; /* protected by pool_lock */
	int npool;	      /* protected by pool_lock */
	bool plain;	      /* http://: never through a proxy */
	bool ready;
	long rejected_at; /* atomic: when the key was last refused, 0 */
	bool retry_now;	  /* atomic: let the next request ask again */
	bool aborting;	  /* atomic: http_abort_all() was called */
} http;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *u)
{
	(void)h;
	(void)a;
	(void)u;
	pthread_mutex_lock(&http.share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h;
	(void)u;
	pthread_mutex_unlock(&http.share_locks[data]);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- the base URL, parsed the way libcurl will use it ---- */

static bool host_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;
	char inner[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(host);

	if (!strcasecmp(host, "localhost"))
		return true; /* libcurl answers it itself, no DNS */
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len > 2 && len < sizeof(inner) && host[0] == '[' &&
	    host[len - 1] == ']') {
		memcpy(inner, host + 1, len - 2);
		inner[len - 2] = '\0';
		return inet_pton(AF_INET6, inner, &a6) == 1 &&
			IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

/* Whether part of u is there (and not empty). */
static bool has_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	bool has = !curl_url_get(u, part, &v, 0) && v && *v;

	curl_free(v);
	return has;
}

int http_parse_base(const char *url, struct http_base *out, char *err,
		    size_t size)
{
	char *scheme = NULL, *host = NULL, *full = NULL;
	CURLU *u = curl_url();
	CURLUcode uc;
	size_t len;
	int res = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!u)
		return -ENOMEM;
	if (!strstr(url, "://")) {
		/* 127.0.0.1:8080 reads as scheme "127.0.0.1": say what it is */
		snprintf(err, size, "url must start with https:// or http://");
		goto out;
	}
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc) {
		/* never echo the text: it may hold a password */
		snprintf(err, size, "url is not a valid URL (%s)",
			 curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    (strcmp(scheme, "https") && strcmp(scheme, "http"))) {
		snprintf(err, size, "url must start with https:// or http://");
		goto out;
	}
	if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
	    has_part(u, CURLUPART_OPTIONS)) {
		snprintf(err, size,
			 "url must not hold a user name or password"
			 " (the key comes from MIXPEEK_API_KEY or key_file)");
		goto out;
	}
	if (has_part(u, CURLUPART_QUERY) || has_part(u, CURLUPART_FRAGMENT)) {
		snprintf(err, size,
			 "url must not have a query or fragment "
			 "(?... or #...)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) || !*host) {
		snprintf(err, size, "url has no host");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_URL, &full, 0)) {
		snprintf(err, size, "url cannot be used");
		goto out;
	}
	len = strlen(full);
	while (len > 0 && full[len - 1] == '/')
		full[--len] = '\0';
	out->https = !strcmp(scheme, "https");
	out->loopback = host_loopback(host);
	out->url = strdup(full);
	out->host = strdup(host);
	res = out->url && out->host ? 0 : -ENOMEM;
	if (res)
		http_base_release(out);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(full);
	curl_url_cleanup(u);
	return res;
}

void http_url_shown(const char *url, char *out, size_t size)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	CURLU *u = curl_url();

	snprintf(out, size, "(not a URL)");
	if (u &&
	    !curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
		snprintf(out, size, "%s://%s%s%s%s", scheme, host,
			 port ? ":" : "", port ? port : "",
			 path && strcmp(path, "/") ? path : "");
		/* a control byte in it is written escaped, not sent */
		if (text_control_str(out) >= 0) {
			char raw[256];

			snprintf(raw, sizeof(raw), "%s", out);
			text_escape(out, size, raw, strlen(raw));
		}
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

void http_base_release(struct http_base *b)
{
	free(b->url);
	free(b->host);
	memset(b, 0, sizeof(*b));
}

/*
 * Append the header line head + value; value must hold no control byte
 * (a CR or LF would start a header of its own). The line is built, copied
 * by libcurl and wiped, so the list holds the only copy.
 */
static struct curl_slist *add_header(struct curl_slist *h, const char *head,
				     const char *value, int *res)
{
	struct buf line = BUF_INIT(HTTP_HEADER_MAX);
	struct curl_slist *t = NULL;

	if (*res)
		return h;
	if (text_control_str(value) >= 0) {
		*res = -EINVAL;
		return h;
	}
	*res = buf_printf(&line, "%s%s", head, value);
	if (!*res && !(t = curl_slist_append(h, buf_str(&line))))
		*res = -ENOMEM;
	if (line.data)
		explicit_bzero(line.data, line.len);
	buf_release(&line);
	return t ? t : h;
}

int http_global_init(const struct http_config *cfg)
{
	struct curl_slist *h = NULL;
	int i, res = 0;

	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -EIO;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http.share_locks[i], NULL);
	pthread_mutex_init(&http.pool_lock, NULL);
	http.ready = true; /* from here on, cleanup undoes what is done */
	http.cfg = *cfg;
	http.cfg.base_url = dup_or_null(cfg->base_url);
	http.cfg.api_key = NULL; /* kept only inside the header list */
	http.cfg.namespace = dup_or_null(cfg->namespace);
	http.cfg.ca_file = dup_or_null(cfg->ca_file);
	http.cfg.ca_dir = dup_or_null(cfg->ca_dir);
	http.plain = !strncmp(cfg->base_url, "http://", 7);
	/* twice: a GET has no body, and so no Content-Type */
	for (i = 0; i < 2; i++) {
		h = NULL;
		h = add_header(h, "Authorization: Bearer ", cfg->api_key, &res);
		h = add_header(h, "Accept: ", "application/json", &res);
		if (i == 0)
			h = add_header(h, "Content-Type: ", "application/json",
				       &res);
		h = add_header(h, "Expect:", "", &res); /* no 100-continue */
		if (cfg->namespace)
			h = add_header(h, "X-Namespace: ", cfg->namespace,
				       &res);
		if (i == 0)
			http.headers = h;
		else
			http.get_headers = h;
	}
	if (!res && !http.cfg.base_url)
		res = -ENOMEM;
	if (res) {
		http_global_cleanup();
		return res;
	}
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
	/* wipe the header lists, which hold the key */
	for (h = http.headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	for (h = http.get_headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(http.headers);
	curl_slist_free_all(http.get_headers);
	free((char *)http.cfg.base_url);
	free((char *)http.cfg.namespace);
	free((char *)http.cfg.ca_file);
	free((char *)http.cfg.ca_dir);
	curl_global_cleanup();
	memset(&http, 0, sizeof(http));
}

static bool aborting(void)
{
	return __atomic_load_n(&http.aborting, __ATOMIC_RELAXED);
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	(void)ud;
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return aborting(); /* non-zero ends the transfer */
}

/* The one answer allowed past HTTP_BIG (see http.h). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC: big_init */
	pthread_once_t once;
	bool taken;
} big = { .lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT };

static void big_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&big.cond, &ca);
	pthread_condattr_destroy(&ca);
}

/* Take the big slot, waiting up to wait_ms; false when not in time. */
static bool big_claim(long wait_ms)
{
	struct timespec ts;
	bool got;

	pthread_once(&big.once, big_init);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&big.lock);
	while (big.taken && !aborting())
		if (pthread_cond_timedwait(&big.cond, &big.lock, &ts))
			break;
	got = !big.taken && !aborting();
	big.taken |= got;
	pthread_mutex_unlock(&big.lock);
	return got;
}

/* Free the slot (release), or only wake its waiters (shutting down). */
static void big_wake(bool release)
{
	pthread_once(&big.once, big_init);
	pthread_mutex_lock(&big.lock);
	if (release)
		big.taken = false;
	pthread_cond_broadcast(&big.cond);
	pthread_mutex_unlock(&big.lock);
}

void http_abort_all(void)
{
	__atomic_store_n(&http.aborting, true, __ATOMIC_RELAXED);
	big_wake(false);
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
	/* the path as built (api.c): no curl version resolves dots in it */
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (http.cfg.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, http.cfg.ca_file);
	if (http.cfg.ca_dir)
		curl_easy_setopt(c, CURLOPT_CAPATH, http.cfg.ca_dir);
	/*
	 * Through a proxy, plain http would hand it every header, the key
	 * among them; https only shows it a CONNECT. So plain http never
	 * uses one, and https takes libcurl's variables (https_proxy,
	 * HTTPS_PROXY, all_proxy, ALL_PROXY, no_proxy, NO_PROXY).
	 */
	if (http.plain)
		curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mixpeekfs/" PACKAGE_VERSION);
	/* a transfer in flight notices http_abort_all() within a second */
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
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
	struct http_limits *lim;
	bool too_big;
	bool big;      /* holds the big slot */
	bool grew;     /* passed HTTP_BIG, no big slot in time: ended */
	long claim_ms; /* how long it may wait for that slot */
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's own words */
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (!x->big && x->body->len + n > HTTP_BIG) {
		if (!big_claim(x->claim_ms)) {
			x->grew = true;
			return 0; /* aborts: sched.c sends it again */
		}
		x->big = true;
	}
	if (buf_add(x->body, data, n)) {
		x->too_big = true;
		return 0; /* aborts the transfer */
	}
	return n;
}

/*
 * A header's value as a whole number of at most 12 digits (a time in
 * seconds, a count), or -1: anything longer or not a number is as if
 * absent, so no multiplication by it can overflow.
 */
static long header_number(const char *v)
{
	long n = 0;
	int digits = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (++digits > 12)
			return -1;
		n = n * 10 + (*v - '0');
	}
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	return digits && !*v ? n : -1;
}

/* Retry-After as seconds (a number, or an HTTP date), or -1. */
static double retry_after(const char *v)
{
	long n = header_number(v);
	time_t when;

	if (n >= 0)
		return (double)n;
	when = curl_getdate(v, NULL);
	if (when <= 0)
		return -1;
	return when > time(NULL) ? (double)(when - time(NULL)) : 0;
}

void http_parse_header(const char *data, size_t n, struct http_limits *lim)
{
	static const struct {
		const char *name;
		size_t off;
	} nums[] = {
		{ "x-ratelimit-limit:", offsetof(struct http_limits, limit) },
		{ "x-ratelimit-remaining:",
		  offsetof(struct http_limits, remaining) },
		{ "x-ratelimit-window:", offsetof(struct http_limits, window) },
	};
	size_t i, len;
	char value[128];
	long v;

	if (n < 2 || n > sizeof(value) + 64)
		return;
	for (i = 0; i < sizeof(nums) / sizeof(*nums); i++) {
		len = strlen(nums[i].name);
		if (n > len && !strncasecmp(data, nums[i].name, len)) {
			snprintf(value, sizeof(value), "%.*s", (int)(n - len),
				 data + len);
			*(long *)((char *)lim +
				  nums[i].off) = header_number(value);
			return;
		}
	}
	if (n > 18 && !strncasecmp(data, "x-ratelimit-reset:", 18)) {
		snprintf(value, sizeof(value), "%.*s", (int)(n - 18),
			 data + 18);
		v = header_number(value);
		lim->reset = v >= 0 ? (double)v : -1;
	} else if (n > 12 && !strncasecmp(data, "retry-after:", 12)) {
		snprintf(value, sizeof(value), "%.*s", (int)(n - 12),
			 data + 12);
		lim->retry_after = retry_after(value);
	}
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;

	http_parse_header(data, size * nmemb, x->lim);
	return size * nmemb;
}

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 401:
	case 403: return -EACCES;
	case 404: return -ENOENT;
	case 400:
	case 422: return -EINVAL;
	default: return -EIO; /* 408, 429, 5xx, anything else */
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
	case CURLE_COULDNT_RESOLVE_HOST: return true;
	default: return false;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static CURLcode perform(CURL *c, const char *method, const char *url,
			const char *body, long timeout_ms, struct xfer *x)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER,
			 body ? http.headers : http.get_headers);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 http.cfg.connect_timeout_ms < timeout_ms ?
				 http.cfg.connect_timeout_ms :
				 timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
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

/*
 * A rejected key (401, 403) is not an outage, and asking again at once
 * would only be refused again: after a rejection, requests fail with
 * EACCES without being sent, and one request per key_retry_ms asks again.
 */
static bool key_gate_open(void)
{
	long at = __atomic_load_n(&http.rejected_at, __ATOMIC_RELAXED);
	long now = now_ms();

	if (!at)
		return true;
	if (__atomic_exchange_n(&http.retry_now, false, __ATOMIC_RELAXED))
		return true;
	if (now - at < http.cfg.key_retry_ms)
		return false;
	/* one caller wins the retry; the others wait for the next one */
	return __atomic_compare_exchange_n(&http.rejected_at, &at, now, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void http_retry_key(void)
{
	/*
	 * A flag, not an old time: the monotonic clock starts at boot, and
	 * on a machine up for less than key_retry_ms no time is old enough.
	 */
	if (__atomic_load_n(&http.rejected_at, __ATOMIC_RELAXED))
		__atomic_store_n(&http.retry_now, true, __ATOMIC_RELAXED);
}

void http_key_refused(struct http_response *resp)
{
	long was = __atomic_exchange_n(&http.rejected_at, now_ms(),
				       __ATOMIC_RELAXED);

	resp->key_change = was ? 0 : 1;
}

long http_key_retry_ms(void)
{
	return http.cfg.key_retry_ms;
}

/*
 * Note what the API said of the key; resp->key_change tells the caller.
 * A 401 refuses the key; a 403 may refuse only one task or folder (the
 * caller asks the probe request, see api_page.c).
 */
static void key_verdict(struct http_response *resp)
{
	long was;

	if (resp->status == 401) {
		http_key_refused(resp);
	} else if (resp->status >= 200 && resp->status < 300) {
		was = __atomic_exchange_n(&http.rejected_at, 0,
					  __ATOMIC_RELAXED);
		__atomic_store_n(&http.retry_now, false, __ATOMIC_RELAXED);
		resp->key_change = was ? -1 : 0;
	}
}

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, http.cfg.max_body);
	resp->lim.limit = resp->lim.remaining = resp->lim.window = -1;
	resp->lim.reset = resp->lim.retry_after = -1;
}

bool http_key_gate(struct http_response *resp)
{
	if (aborting()) {
		snprintf(resp->error, sizeof(resp->error), "shutting down");
		return false;
	}
	if (!key_gate_open()) {
		snprintf(resp->error, sizeof(resp->error),
			 "the API rejected "
			 "the key; not asked again yet");
		return false;
	}
	return true;
}

int http_attempt(const char *method, const char *path, const char *body,
		 long timeout_ms, http_usable usable,
		 struct http_response *resp)
{
	enum stats_endpoint ep = endpoint_of(method, path);
	struct buf url = BUF_INIT(65536);
	struct xfer x = { .body = &resp->body,
			  .lim = &resp->lim,
			  /* half its time: the other half for the answer */
			  .claim_ms = timeout_ms / 2 };
	CURLcode rc;
	CURL *c;
	int res;

	http_response_init(resp);
	if (aborting()) {
		snprintf(resp->error, sizeof(resp->error), "shutting down");
		return -EIO;
	}
	if (buf_printf(&url, "%s%s", http.cfg.base_url, path))
		return -ENOMEM;
	c = handle_get();
	if (!c) {
		buf_release(&url);
		return -ENOMEM;
	}
	rc = perform(c, method, buf_str(&url), body,
		     timeout_ms > 0 ? timeout_ms : 1, &x);
	resp->big = x.big;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->lim.headers = resp->lim.limit > 0 && resp->lim.window > 0;
	stats_request(ep, resp->status);
	stats_add(STATS_BYTES, resp->body.len);
	if (rc == CURLE_OK) {
		res = http_status_errno(resp->status);
		snprintf(resp->error, sizeof(resp->error), "HTTP %ld",
			 resp->status);
		key_verdict(resp);
		resp->retry = retryable_status(resp->status);
		if (!res && usable &&
		    !usable(buf_str(&resp->body), resp->body.len)) {
			/* cut or garbled on the way: as a 5xx */
			snprintf(resp->error, sizeof(resp->error),
				 "HTTP %ld with a cut or garbled body",
				 resp->status);
			res = -EIO;
			resp->retry = true;
		}
	} else {
		/* libcurl's own words say which (expired, self-signed) */
		resp->grew = x.grew;
		snprintf(resp->error, sizeof(resp->error), "%s",
			 x.grew		     ? "a big answer, and another big "
					       "one not parsed in time" :
				 x.too_big   ? "response body exceeds the cap"
					       " (max_response)" :
				 aborting()  ? "shutting down" :
				 x.errbuf[0] ? x.errbuf :
					       curl_easy_strerror(rc));
		res = -EIO;
		resp->retry = !x.too_big && !aborting() && retryable_curl(rc);
		if (x.grew)
			buf_release(&resp->body); /* of no use: free it now */
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
	if (resp->big)
		big_wake(true);
	resp->big = false;
	buf_release(&resp->body);
}

/*
 * An escaped string is at most three bytes for each byte of s, and s is
 * bounded where it came from (a task id is a file name; a cursor came in
 * a response within max_response): no cap of its own.
 */
#define ESCAPED_MAX (SIZE_MAX / 2)

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	struct buf b = BUF_INIT(ESCAPED_MAX);
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
